/** The services' routes, built from a base URL the app gives (with or without a trailing `/`). */

import { ConfigurationError } from "./errors.js";

/** The local stack's addresses (`make up`), used when an app names none. */
export const LOCAL_INGEST_URL = "http://127.0.0.1:8000";
export const LOCAL_FANOUT_URL = "http://127.0.0.1:8080";

/** `?a=1&b=2` of the pairs with a value; by hand, as React Native's URLSearchParams is partial. */
function query(pairs: Record<string, string | undefined>): string {
  const parts = Object.entries(pairs)
    .filter((pair): pair is [string, string] => Boolean(pair[1]))
    .map(([name, value]) => `${name}=${encodeURIComponent(value)}`);
  return parts.length ? `?${parts.join("&")}` : "";
}

function base(url: string): string {
  if (!/^(https?|wss?):\/\//i.test(url)) {
    throw new ConfigurationError(`a service URL must be absolute (http:// or https://): ${url}`);
  }
  return url.replace(/\/+$/, "");
}

/** `POST` here to send reactions to `streamId`. */
export function reactionsUrl(ingestUrl: string, streamId: string): string {
  return `${base(ingestUrl)}/v1/streams/${encodeURIComponent(streamId)}/reactions`;
}

/** The SSE feed of `streamId`; the viewer token goes in the query (an EventSource sets no header). */
export function eventsUrl(fanoutUrl: string, streamId: string, token?: string): string {
  return `${base(fanoutUrl)}/v1/streams/${encodeURIComponent(streamId)}/events${query({ token })}`;
}

/**
 * The WebSocket feed of `streamId`. A browser's WebSocket cannot send headers, so the token and
 * the id to resume after go in the query, where fanout reads them too. `heartbeat=1` asks for a
 * heartbeat text in every quiet interval: browsers and React Native hide the protocol's pings.
 */
export function websocketUrl(
  fanoutUrl: string,
  streamId: string,
  token?: string,
  lastEventId?: string,
): string {
  const root = base(fanoutUrl).replace(/^http/i, "ws");
  const path = `${root}/v1/streams/${encodeURIComponent(streamId)}/ws`;
  return path + query({ token, last_event_id: lastEventId, heartbeat: "1" });
}
