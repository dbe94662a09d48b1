// The page's feed: the Emostream SDK (emostream-client.min.js, built from clients/js) following
// the stream's SSE feed, and what its states mean on the page.
//
// The SDK resumes after every break with Last-Event-ID, backs off with jitter, and takes a
// connection that carries no heartbeat for 45 s for dead. The page retries refusals too (a busy
// worker's 503, a refused token's 401 or 403): viewers leave the tab open and expect it to come
// back by itself once the cause is gone.

import { subscribe } from "./emostream-client.min.js";

/** The page's connection state for an SDK state: [state, detail], or null to keep the current. */
export function pageState(feed) {
  switch (feed.state) {
    case "connecting":
      return [feed.attempt > 1 ? "reconnecting" : "connecting"];
    case "open":
      return ["live"];
    case "waiting":
      // An answer from the server (an HTTP error) will take a while; a dropped line, not long.
      return "status" in feed.error ? ["offline", feed.delayMs] : ["reconnecting"];
    case "closed":
      return ["ended"];
    default:
      return null;
  }
}

/**
 * Follows the feed of `streamId` on this page's origin, with the page's own `token` parameter;
 * `onSwarm(message)` gets each swarm once, in order, and `onState(state, detail)` each change.
 */
export function follow(streamId, { onSwarm, onState }) {
  const token = new URLSearchParams(location.search).get("token") || undefined;
  const subscription = subscribe({
    fanoutUrl: location.origin,
    streamId,
    viewerToken: token,
    transport: "sse",
    shouldRetry: () => true,
    onSwarm,
    onState: (feed) => {
      const shown = pageState(feed);
      if (shown !== null) onState(...shown);
    },
  });
  // Back online after a network loss: try now rather than at the end of a long back-off.
  window.addEventListener("online", () => subscription.reconnectNow());
  return subscription;
}
