// One stream's Server-Sent Events feed, kept open.
//
// While the connection merely drops, EventSource reconnects by itself and sends Last-Event-ID.
// It gives up for good on an HTTP error (a busy worker's 503, an expired token's 401/403) or a
// wrong content type; then this module opens a new one after a growing, jittered delay (so a
// restarted pod is not hit by all its viewers at the same instant), passing the last id seen as
// the `last_event_id` query parameter, since a new EventSource cannot be given that header.

const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;

/** The feed URL of `streamId`, carrying the page's own `token` parameter when it has one. */
export function feedUrl(streamId, pageSearch, lastEventId) {
  const params = new URLSearchParams();
  const token = new URLSearchParams(pageSearch).get("token");
  if (token) params.set("token", token);
  if (lastEventId) params.set("last_event_id", lastEventId);
  const query = params.toString();
  return `/v1/streams/${encodeURIComponent(streamId)}/events${query ? `?${query}` : ""}`;
}

/**
 * Follows the feed of `streamId`; `onSwarm(message)` gets each parsed swarm and
 * `onState(state, detail)` each change of "connecting", "live", "reconnecting" or "offline".
 */
export function follow(streamId, { onSwarm, onState }) {
  let lastEventId = null;
  let delay = FIRST_DELAY_MS;
  let timer = null;

  function open() {
    timer = null;
    const source = new EventSource(feedUrl(streamId, location.search, lastEventId));
    onState("connecting");
    source.onopen = () => {
      delay = FIRST_DELAY_MS;
      onState("live");
    };
    source.onerror = () => {
      if (source.readyState !== EventSource.CLOSED) {
        onState("reconnecting");
        return;
      }
      const wait = Math.round(delay * (0.8 + Math.random() * 0.4));
      delay = Math.min(delay * 2, MAX_DELAY_MS);
      onState("offline", wait);
      timer = setTimeout(open, wait);
    };
    source.addEventListener("swarm", (event) => {
      if (event.lastEventId) lastEventId = event.lastEventId;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return; // one malformed frame must not stop the page
      }
      if (message !== null && typeof message === "object") onSwarm(message);
    });
  }

  // Back online after a network loss: try now rather than at the end of a long back-off.
  window.addEventListener("online", () => {
    if (timer !== null) {
      clearTimeout(timer);
      open();
    }
  });
  open();
}
