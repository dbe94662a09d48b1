/**
 * The swarm message fanout writes to viewers, on both transports: the JSON object the
 * aggregation made for one window of one stream, with the stream's viewer count added.
 */

/** One window's running totals; the last message of a window holds its final counts. */
export interface SwarmMessage {
  /** Ordered per stream: a later message has a greater id (plain string order). */
  id: string;
  stream_id: string;
  /** ISO 8601 UTC. */
  window_start: string;
  window_end: string;
  /** Reactions per emoji in the window so far. */
  counts: Record<string, number>;
  /** Scaled counts: how many emojis to float per emoji (`ceil(count / 1000)` by default). */
  swarm: Record<string, number>;
  /** -1 (angry) to 1 (delighted); null when the window had no emoji with a sentiment. */
  sentiment?: number | null;
  /** Epoch milliseconds of the first and newest reaction counted, and of the message. */
  first_receive_ms?: number;
  last_receive_ms?: number;
  emitted_at?: number;
  /** Viewers of the stream on every fanout pod, as last known. */
  viewers?: number;
}

function isCountMap(value: unknown): value is Record<string, number> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  return Object.values(value).every((n) => typeof n === "number" && Number.isFinite(n));
}

/**
 * The swarm message in `text`, or undefined when it is not one (not JSON, or a member the SDK's
 * type promises is missing or of the wrong type): one bad frame must not end a feed.
 */
export function parseSwarm(text: string): SwarmMessage | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined;
  const m = value as Record<string, unknown>;
  const strings = [m.id, m.stream_id, m.window_start, m.window_end];
  if (!strings.every((s) => typeof s === "string" && s !== "")) return undefined;
  if (!isCountMap(m.counts) || !isCountMap(m.swarm)) return undefined;
  return value as SwarmMessage;
}
