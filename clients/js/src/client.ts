/** `EmostreamClient`: one deployment's ingest and fanout, with the app's tokens and platform. */

import { MAX_BACKOFF_MS } from "./backoff.js";
import { resolveFetch, type Fetch } from "./http.js";
import { sendReactions, type Reaction } from "./send.js";
import { subscribe, type SubscribeOptions, type Subscription, type TokenSource, type Transport } from "./subscribe.js";
import type { WebSocketConstructor } from "./feeds.js";
import { LOCAL_FANOUT_URL, LOCAL_INGEST_URL } from "./urls.js";

export interface ClientOptions {
  /** Ingest's base URL (default: the local stack's, http://127.0.0.1:8000). */
  ingestUrl?: string;
  /** Fanout's base URL (default: the local stack's, http://127.0.0.1:8080). */
  fanoutUrl?: string;
  /** A sender token: reactions are sent as its subject (docs/access.md). */
  senderToken?: string;
  /** A viewer token, or a function giving a fresh one for each connection. */
  viewerToken?: TokenSource;
  /** Feed transport: `auto` (default) is WebSocket on React Native, else SSE. */
  transport?: Transport | "auto";
  fetch?: Fetch;
  WebSocket?: WebSocketConstructor;
  /** Time limit of one send request (10 s). */
  timeoutMs?: number;
  /** Retries of a send refused with 429 or 503 (3). */
  maxRetries?: number;
  /** The longest wait before one retry of a send (30 s). */
  maxRetryWaitMs?: number;
  /** Silence after which a feed connection is taken for dead (45 s). */
  heartbeatTimeoutMs?: number;
  random?: () => number;
}

/** What `subscribe` takes beyond the client's own options. */
export type FollowOptions = Omit<SubscribeOptions, "fanoutUrl" | "streamId">;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

export class EmostreamClient {
  readonly ingestUrl: string;
  readonly fanoutUrl: string;

  constructor(private readonly options: ClientOptions = {}) {
    this.ingestUrl = options.ingestUrl ?? LOCAL_INGEST_URL;
    this.fanoutUrl = options.fanoutUrl ?? LOCAL_FANOUT_URL;
  }

  /**
   * Sends one reaction or a batch (at most 500) to `streamId`; resolves to how many ingest took.
   * Rejects with an `ApiError` subclass for an error answer (after the allowed retries of 429
   * and 503), or `ConnectionFailedError` when ingest cannot be reached or does not answer.
   */
  send(streamId: string, reactions: Reaction | Reaction[], { signal }: { signal?: AbortSignal } = {}): Promise<number> {
    const o = this.options;
    return sendReactions(
      {
        ingestUrl: this.ingestUrl,
        fetch: resolveFetch(o.fetch),
        senderToken: o.senderToken,
        timeoutMs: o.timeoutMs ?? 10_000,
        maxRetries: o.maxRetries ?? 3,
        maxRetryWaitMs: o.maxRetryWaitMs ?? MAX_BACKOFF_MS,
        random: o.random ?? Math.random,
        sleep,
        signal,
      },
      streamId,
      reactions,
    );
  }

  /** Follows the swarms of `streamId` until `close()`; see `subscribe`. */
  subscribe(streamId: string, follow: FollowOptions): Subscription {
    const o = this.options;
    const defaults: Partial<SubscribeOptions> = {
      transport: o.transport,
      viewerToken: o.viewerToken,
      fetch: o.fetch,
      WebSocket: o.WebSocket,
      heartbeatTimeoutMs: o.heartbeatTimeoutMs,
      random: o.random,
    };
    const given = Object.fromEntries(Object.entries(defaults).filter(([, v]) => v !== undefined));
    return subscribe({ ...given, ...follow, fanoutUrl: this.fanoutUrl, streamId });
  }
}
