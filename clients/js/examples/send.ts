import { EmostreamClient, RateLimitedError, RequestRejectedError } from "@emostream/client";

/** Sends `count` reactions of `emoji` to `streamId` in batches of 500 (ingest's most per request). */
export async function sendBurst(client: EmostreamClient, streamId: string, emoji: string, count: number): Promise<number> {
  let accepted = 0;
  for (let first = 0; first < count; first += 500) {
    const size = Math.min(500, count - first);
    const batch = Array.from({ length: size }, (_, i) => ({ user_id: `fan-${first + i}`, emoji }));
    try {
      accepted += await client.send(streamId, batch);
    } catch (error) {
      if (error instanceof RateLimitedError) {
        // Still over the rate after the client's own retries: skip this batch, the show goes on.
        continue;
      }
      if (error instanceof RequestRejectedError) {
        // A bug to fix, not a moment to wait out: the problem says which item and field.
        console.error(error.status, error.title, error.detail, error.problem);
      }
      throw error;
    }
  }
  return accepted;
}
