import type { EmostreamClient, FeedState, Subscription, SwarmMessage } from "@emostream/client";

export type Totals = Record<string, number>;

export interface TotalsHandlers {
  /** The stream's reactions per emoji since the feed started, after each swarm. */
  onTotals: (totals: Totals, swarm: SwarmMessage) => void;
  onState?: (state: FeedState) => void;
}

/**
 * Follows `streamId` and adds up its windows. A window arrives several times as running totals,
 * so only its newest counts count; the SDK has already dropped repeats after a reconnection.
 */
export function followTotals(client: EmostreamClient, streamId: string, handlers: TotalsHandlers): Subscription {
  const windows = new Map<string, Totals>();
  return client.subscribe(streamId, {
    onSwarm(swarm) {
      windows.set(swarm.window_start, swarm.counts);
      const totals: Totals = {};
      for (const counts of windows.values()) {
        for (const [emoji, n] of Object.entries(counts)) totals[emoji] = (totals[emoji] ?? 0) + n;
      }
      handlers.onTotals(totals, swarm);
    },
    ...(handlers.onState ? { onState: handlers.onState } : {}),
  });
}
