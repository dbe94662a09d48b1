/**
 * Following a stream's swarms for as long as the app wants them, across dropped connections.
 *
 * Each connection resumes after the last swarm delivered (`ResumePoint`), so the app sees every
 * swarm still in the server's replay window once, in order. A connection that stays silent for
 * `heartbeatTimeoutMs` (three of the server's 15 s heartbeats by default) is taken for dead and
 * replaced. Between attempts the feed waits the server's `Retry-After`, else its `retry:` hint
 * (2 s) doubled per consecutive failure up to 30 s, each jittered by ±25 %; a connection that
 * opened resets the count, as the Python SDK does.
 */

import { backoffDelay, retryAfterDelay } from "./backoff.js";
import { ApiError, ConfigurationError, ConnectionFailedError, EmostreamError, RequestRejectedError } from "./errors.js";
import { openSse, openWebSocket, type Feed, type FeedEnd, type WebSocketConstructor } from "./feeds.js";
import { resolveFetch, type Fetch } from "./http.js";
import { ResumePoint } from "./resume.js";
import type { SwarmMessage } from "./swarm.js";
import { eventsUrl, websocketUrl } from "./urls.js";

export type Transport = "sse" | "websocket";

/** A token, or a function giving a fresh one for each connection (tokens are checked on connect). */
export type TokenSource = string | (() => string | Promise<string>);

export type FeedState =
  | { state: "connecting"; attempt: number }
  | { state: "open"; transport: Transport }
  | { state: "waiting"; delayMs: number; error: EmostreamError }
  | { state: "closed"; error?: EmostreamError };

export interface SubscribeOptions {
  fanoutUrl: string;
  streamId: string;
  /** Each swarm once, in order. */
  onSwarm: (swarm: SwarmMessage) => void;
  onState?: (state: FeedState) => void;
  /** `auto`: WebSocket on React Native (its fetch cannot stream), else SSE. */
  transport?: Transport | "auto";
  /** A viewer token, needed when the deployment requires them (docs/access.md). */
  viewerToken?: TokenSource;
  /** Start after this swarm id instead of with the stream's latest swarm. */
  lastEventId?: string;
  /** Silence after which a connection is taken for dead (45 s). */
  heartbeatTimeoutMs?: number;
  /** Consecutive failed attempts after which the feed gives up (never). */
  maxFailures?: number;
  /** Whether to try again after `error` (default: unless the request itself was refused, a 4xx). */
  shouldRetry?: (error: EmostreamError) => boolean;
  fetch?: Fetch;
  /** The WebSocket class; default: the platform's (Node 20 has one only with --experimental-websocket). */
  WebSocket?: WebSocketConstructor;
  random?: () => number;
}

export interface Subscription {
  /** The id of the last swarm delivered: give it as `lastEventId` to continue elsewhere. */
  readonly lastEventId: string | undefined;
  readonly state: FeedState;
  /** Settles with the error that ended the feed, or undefined when `close()` (or the server) did. */
  readonly closed: Promise<EmostreamError | undefined>;
  close(): void;
  /** Try now rather than at the end of the current wait (an app coming back online). */
  reconnectNow(): void;
}

export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 45_000;
/** The feed's `retry:` hint until the server sends one (fanout's `EMOSTREAM_RETRY_MS`). */
export const DEFAULT_RETRY_MS = 2000;

/** Starts following `options.streamId`; see `Subscription`. */
export function subscribe(options: SubscribeOptions): Subscription {
  return new Follower(options);
}

/** The transport for `auto`: React Native's fetch has no streaming body, its WebSocket works. */
export function pickTransport(choice: Transport | "auto" = "auto"): Transport {
  if (choice !== "auto") return choice;
  const nav = (globalThis as { navigator?: { product?: string } }).navigator;
  return nav?.product === "ReactNative" ? "websocket" : "sse";
}

/** Every 4xx but 408 and 429 is the request's own fault: trying again cannot help. */
function retryableByDefault(error: EmostreamError): boolean {
  return !(error instanceof RequestRejectedError && error.status !== 408);
}

function asEmostreamError(error: unknown): EmostreamError {
  if (error instanceof EmostreamError) return error;
  return new ConnectionFailedError(String(error), { cause: error });
}

/** An app's handler that throws must not end the feed: its error goes to the global handler. */
function deliver(handler: (swarm: SwarmMessage) => void, swarm: SwarmMessage): void {
  try {
    handler(swarm);
  } catch (error) {
    setTimeout(() => {
      throw error;
    });
  }
}

class Follower implements Subscription {
  readonly closed: Promise<EmostreamError | undefined>;
  private readonly resume: ResumePoint;
  private readonly transport: Transport;
  private readonly fetch: Fetch | undefined;
  private readonly WebSocket: WebSocketConstructor | undefined;
  private current: FeedState = { state: "connecting", attempt: 1 };
  private feed: Feed | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;

  constructor(private readonly options: SubscribeOptions) {
    this.resume = new ResumePoint(options.lastEventId);
    this.transport = pickTransport(options.transport);
    // Fail at once, not on the first attempt, when this platform cannot run the transport.
    if (this.transport === "websocket") {
      const platform = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
      this.WebSocket = options.WebSocket ?? platform;
      if (this.WebSocket === undefined) {
        throw new ConfigurationError(
          "no WebSocket here: pass one as the `WebSocket` option (Node 20: the `ws` package, or run node with --experimental-websocket)",
        );
      }
    } else {
      this.fetch = resolveFetch(options.fetch);
    }
    this.closed = this.run();
  }

  get lastEventId(): string | undefined {
    return this.resume.lastEventId;
  }

  get state(): FeedState {
    return this.current;
  }

  close(): void {
    this.stopped = true;
    this.feed?.close(new EmostreamError("closed by the app"));
    this.wake?.();
  }

  reconnectNow(): void {
    this.wake?.();
  }

  private set(state: FeedState): void {
    this.current = state;
    this.options.onState?.(state);
  }

  private async run(): Promise<EmostreamError | undefined> {
    const maxFailures = this.options.maxFailures ?? Infinity;
    const shouldRetry = this.options.shouldRetry ?? retryableByDefault;
    const random = this.options.random ?? Math.random;
    let failures = 0;
    let retryMs = DEFAULT_RETRY_MS;
    while (!this.stopped) {
      this.set({ state: "connecting", attempt: failures + 1 });
      let end: FeedEnd | undefined;
      let error: EmostreamError | undefined;
      try {
        end = await this.connect({
          open: () => {
            failures = 0;
            this.set({ state: "open", transport: this.transport });
          },
          retryHint: (ms) => {
            retryMs = ms;
          },
        });
      } catch (thrown) {
        error = asEmostreamError(thrown);
      }
      if (this.stopped) break;
      if (end === "stop") {
        this.set({ state: "closed" });
        return undefined;
      }
      if (error !== undefined) {
        failures += 1;
        if (!shouldRetry(error) || failures >= maxFailures) {
          this.set({ state: "closed", error });
          return error;
        }
      }
      const delayMs =
        error instanceof ApiError && error.retryAfterMs !== undefined
          ? retryAfterDelay(error.retryAfterMs, random)
          : backoffDelay(Math.max(failures - 1, 0), retryMs, undefined, random);
      const reason = error ?? new ConnectionFailedError("the server ended the feed");
      this.set({ state: "waiting", delayMs, error: reason });
      await this.pause(delayMs);
    }
    this.set({ state: "closed" });
    return undefined;
  }

  /** One connection, watched for silence; settles when it ends. */
  private async connect(hooks: { open: () => void; retryHint: (ms: number) => void }): Promise<FeedEnd> {
    const o = this.options;
    const token = typeof o.viewerToken === "function" ? await o.viewerToken() : o.viewerToken;
    if (this.stopped) throw new EmostreamError("closed by the app");
    const silenceMs = o.heartbeatTimeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS;
    let watchdog: ReturnType<typeof setTimeout> | undefined;
    const alive = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => {
        this.feed?.close(new ConnectionFailedError(`no heartbeat or swarm for ${silenceMs} ms`));
      }, silenceMs);
    };
    const events = {
      open: hooks.open,
      alive,
      retryHint: hooks.retryHint,
      swarm: (message: SwarmMessage) => {
        if (this.resume.accept(message.id)) deliver(o.onSwarm, message);
      },
    };
    const last = this.resume.lastEventId;
    this.feed =
      this.transport === "websocket"
        ? openWebSocket(websocketUrl(o.fanoutUrl, o.streamId, token, last), this.WebSocket!, events)
        : openSse(eventsUrl(o.fanoutUrl, o.streamId, token), last, this.fetch!, events);
    alive();
    try {
      return await this.feed.ended;
    } finally {
      clearTimeout(watchdog);
      this.feed = undefined;
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }
}
