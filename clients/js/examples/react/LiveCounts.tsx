import { EmostreamClient } from "@emostream/client";
import { useSwarmTotals } from "./useSwarmTotals.js";

const client = new EmostreamClient({ fanoutUrl: "https://live.example.com" });

/** The running totals of one stream, largest first. */
export function LiveCounts({ streamId }: { streamId: string }) {
  const { totals, state } = useSwarmTotals(client, streamId);
  const rows = Object.entries(totals).sort((a, b) => b[1] - a[1]);
  return (
    <section aria-label={`Reactions (${state})`}>
      {rows.map(([emoji, n]) => (
        <p key={emoji}>
          {emoji} {n.toLocaleString()}
        </p>
      ))}
    </section>
  );
}
