import { useEffect, useState } from "react";
import type { EmostreamClient, FeedState } from "@emostream/client";
import { followTotals, type Totals } from "../totals.js";

export interface LiveTotals {
  totals: Totals;
  state: FeedState["state"];
}

/** A stream's live totals in a React component; the feed closes when the component unmounts. */
export function useSwarmTotals(client: EmostreamClient, streamId: string): LiveTotals {
  const [live, setLive] = useState<LiveTotals>({ totals: {}, state: "connecting" });
  useEffect(() => {
    const subscription = followTotals(client, streamId, {
      onTotals: (totals) => setLive((before) => ({ ...before, totals })),
      onState: ({ state }) => setLive((before) => ({ ...before, state })),
    });
    return () => subscription.close();
  }, [client, streamId]);
  return live;
}
