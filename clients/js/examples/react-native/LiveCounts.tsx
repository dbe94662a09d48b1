import { Text, View } from "react-native";
import { EmostreamClient } from "@emostream/client";
import { useSwarmTotals } from "../react/useSwarmTotals.js";

// React Native's fetch cannot stream a response, so feeds go over its WebSocket ("auto" picks it
// too). The viewer token comes from the app's own backend, fresh for each connection.
const client = new EmostreamClient({
  ingestUrl: "https://react.example.com",
  fanoutUrl: "https://live.example.com",
  transport: "websocket",
  viewerToken: async () => {
    const answer = await fetch("https://app.example.com/emostream-token");
    return answer.text();
  },
});

export function LiveCounts({ streamId }: { streamId: string }) {
  const { totals, state } = useSwarmTotals(client, streamId);
  return (
    <View accessibilityLabel={`Reactions (${state})`}>
      {Object.entries(totals).map(([emoji, n]) => (
        <Text key={emoji}>
          {emoji} {n}
        </Text>
      ))}
    </View>
  );
}
