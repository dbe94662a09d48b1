/**
 * One connection to a stream's feed, over either transport; the reconnection around it is in
 * `subscribe.ts`.
 *
 * A feed reports what it receives (`FeedEvents`) and settles its `ended` promise when the
 * connection ends: resolved when the server ended it, rejected with the reason otherwise. The
 * server writes a heartbeat at least every `EMOSTREAM_HEARTBEAT_S` (15 s), which `alive` reports:
 * an SSE comment, or on WebSocket a `{"type":"heartbeat"}` text (asked for in the URL; the
 * protocol's pings are answered by the platform without telling scripts).
 */

import { ConfigurationError, ConnectionFailedError, EmostreamError, RequestRejectedError } from "./errors.js";
import { errorOf, type Fetch } from "./http.js";
import { SSEParser } from "./sse.js";
import { parseSwarm, type SwarmMessage } from "./swarm.js";

export interface FeedEvents {
  /** The server accepted the feed. */
  open(): void;
  /** Something arrived (a swarm, a heartbeat): the connection is alive. */
  alive(): void;
  swarm(message: SwarmMessage): void;
  /** The server's reconnection delay (SSE `retry:`). */
  retryHint(ms: number): void;
}

/** How a feed ended without an error: the server closed it, or told the client to stop (204). */
export type FeedEnd = "ended" | "stop";

export interface Feed {
  readonly ended: Promise<FeedEnd>;
  /** Ends the connection; `ended` rejects with `reason`. */
  close(reason: EmostreamError): void;
}

/** What a WebSocket implementation needs for a feed: the browser API's subset. */
export interface WebSocketLike {
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Close codes with which fanout ends a feed it served: going away (drain), try again later. */
const SERVER_ENDED = new Set([1000, 1001, 1013]);

/** Follows the SSE feed at `url` with fetch, reading the body as it streams. */
export function openSse(url: string, lastEventId: string | undefined, fetch: Fetch, events: FeedEvents): Feed {
  const controller = new AbortController();
  let closedWith: EmostreamError | undefined;
  const run = async (): Promise<FeedEnd> => {
    const headers: Record<string, string> = { Accept: "text/event-stream", "Cache-Control": "no-cache" };
    if (lastEventId) headers["Last-Event-ID"] = lastEventId;
    const response = await fetch(url, { headers, signal: controller.signal });
    if (response.status === 204) return "stop"; // the SSE way of saying "do not reconnect"
    if (!response.ok) throw await errorOf(response, url);
    const type = response.headers.get("Content-Type") ?? "";
    if (!type.startsWith("text/event-stream") || !response.body) {
      await response.body?.cancel();
      if (!response.body) throw new ConfigurationError("this fetch cannot stream; use the websocket transport");
      const detail = `Content-Type is ${JSON.stringify(type)}`;
      const problem = { type: "about:blank", title: "Not an event stream", status: response.status, detail };
      throw new RequestRejectedError(problem, url);
    }
    events.open();
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const parser = new SSEParser();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return "ended";
      events.alive();
      for (const event of parser.feed(decoder.decode(value, { stream: true }))) {
        const message = event.event === "swarm" ? parseSwarm(event.data) : undefined;
        if (message) events.swarm(message);
      }
      if (parser.retryMs !== undefined) events.retryHint(parser.retryMs);
    }
  };
  const ended = run().catch((error: unknown) => {
    if (closedWith) throw closedWith;
    if (error instanceof EmostreamError) throw error;
    throw new ConnectionFailedError(`feed ${url} broke: ${String(error)}`, { cause: error });
  });
  return {
    ended,
    close(reason) {
      closedWith ??= reason;
      controller.abort(reason);
    },
  };
}

/**
 * Follows the WebSocket feed at `url` (which carries the id to resume after). A browser hides a
 * refused handshake's status and problem document, so a socket closed before it opened is a
 * `ConnectionFailedError`.
 */
export function openWebSocket(url: string, WebSocket: WebSocketConstructor, events: FeedEvents): Feed {
  let socket: WebSocketLike | undefined;
  let closedWith: EmostreamError | undefined;
  let fail: (error: EmostreamError) => void = () => {};
  const ended = new Promise<FeedEnd>((resolve, reject) => {
    fail = reject;
    let opened = false;
    try {
      socket = new WebSocket(url);
    } catch (error) {
      reject(new ConfigurationError(`cannot open a WebSocket to ${url}: ${String(error)}`, { cause: error }));
      return;
    }
    socket.onopen = () => {
      opened = true;
      events.open();
      events.alive();
    };
    socket.onmessage = (event) => {
      events.alive();
      const message = typeof event.data === "string" ? parseSwarm(event.data) : undefined;
      if (message) events.swarm(message);
    };
    socket.onerror = () => {}; // a close event follows, with the code that says more
    socket.onclose = (event) => {
      if (closedWith) reject(closedWith);
      else if (opened && SERVER_ENDED.has(event.code)) resolve("ended");
      else {
        const why = opened ? `closed with code ${event.code}` : "refused or unreachable";
        const reason = event.reason ? ` (${event.reason})` : "";
        reject(new ConnectionFailedError(`WebSocket ${url} ${why}${reason}`));
      }
    };
  });
  return {
    ended,
    close(reason) {
      closedWith ??= reason;
      socket?.close(1000, "client closed");
      fail(reason); // settle now: a dead connection's close event may take long to come
    },
  };
}
