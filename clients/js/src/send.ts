/**
 * Sending reactions to ingest, retrying only what the server says it did not take.
 *
 * A 429 means nothing was taken, and so does a 503 unless its problem document says otherwise:
 * Kafka may have taken part of a batch (`accepted`), naming the others (`not_enqueued`), and only
 * those go again. The retry waits the server's `Retry-After` (jittered upwards), or a growing
 * back-off without one, at most `maxRetries` times. Anything else fails at once: a network error
 * or time-out may come after the server took the reactions, and sending them again would count
 * them twice.
 */

import { backoffDelay, retryAfterDelay } from "./backoff.js";
import { ApiError, ConnectionFailedError, RateLimitedError } from "./errors.js";
import { abortAfter, errorOf, type Fetch } from "./http.js";
import { reactionsUrl } from "./urls.js";

/** One reaction. `user_id` may be left out with a sender token (its subject is the user). */
export interface Reaction {
  user_id?: string | number;
  emoji: string;
  /** When it happened: epoch seconds or milliseconds, or ISO 8601; default: when received. */
  ts?: number | string | null;
}

export interface SendOptions {
  ingestUrl: string;
  fetch: Fetch;
  /** A sender token (JWT), sent as `Authorization: Bearer`. */
  senderToken?: string | undefined;
  timeoutMs: number;
  maxRetries: number;
  /** The longest single wait before a retry, whatever the server asked. */
  maxRetryWaitMs: number;
  random: () => number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  signal?: AbortSignal | undefined;
}

/** Ingest's first delay when a retryable answer names none. */
const FIRST_RETRY_MS = 2000;

/** Posts `reactions` (one, or a batch of at most 500) to `streamId`; resolves to how many were taken. */
export async function sendReactions(
  options: SendOptions,
  streamId: string,
  reactions: Reaction | Reaction[],
): Promise<number> {
  const url = reactionsUrl(options.ingestUrl, streamId);
  const headers: Record<string, string> = {
    "Content-Type": "application/json",
    Accept: "application/json",
  };
  if (options.senderToken) headers.Authorization = `Bearer ${options.senderToken}`;
  let pending = reactions;
  let taken = 0;
  for (let attempt = 0; ; attempt += 1) {
    const response = await post(options, url, headers, JSON.stringify(pending));
    if (response.status === 200 || response.status === 202) {
      return taken + accepted(await response.json().catch(() => undefined), pending);
    }
    const error = await errorOf(response, url);
    if (!retryable(error) || attempt >= options.maxRetries) throw error;
    if (Array.isArray(pending)) {
      const left = notEnqueued(error, pending);
      taken += pending.length - left.length;
      pending = left;
    }
    const wait =
      error.retryAfterMs !== undefined
        ? retryAfterDelay(error.retryAfterMs, options.random)
        : backoffDelay(attempt, FIRST_RETRY_MS, undefined, options.random);
    await options.sleep(Math.min(wait, options.maxRetryWaitMs), options.signal);
  }
}

function retryable(error: ApiError): boolean {
  return error instanceof RateLimitedError || error.status === 503;
}

/** The reactions of `batch` an error answer says were not taken: those a 503 names when Kafka
 * took part of it, else all of them. */
function notEnqueued(error: ApiError, batch: Reaction[]): Reaction[] {
  const { accepted: n, not_enqueued: missing } = error.problem as { accepted?: unknown; not_enqueued?: unknown };
  if (typeof n !== "number" || n <= 0 || !Array.isArray(missing)) return batch;
  return missing.filter((i): i is number => Number.isInteger(i) && i >= 0 && i < batch.length).map((i) => batch[i]!);
}

async function post(
  options: SendOptions,
  url: string,
  headers: Record<string, string>,
  body: string,
): Promise<Response> {
  const deadline = abortAfter(options.timeoutMs, options.signal);
  try {
    return await options.fetch(url, { method: "POST", headers, body, signal: deadline.signal });
  } catch (error) {
    if (options.signal?.aborted) throw options.signal.reason;
    const why = deadline.expired() ? `no answer within ${options.timeoutMs} ms` : String(error);
    throw new ConnectionFailedError(`cannot send to ${url}: ${why}`, { cause: error });
  } finally {
    deadline.clear();
  }
}

/** The count ingest reports; `/send_emoji`-style answers carry none, meaning all were taken. */
function accepted(body: unknown, reactions: Reaction | Reaction[]): number {
  if (body !== null && typeof body === "object" && "accepted" in body) {
    const n = (body as { accepted: unknown }).accepted;
    if (typeof n === "number" && Number.isInteger(n)) return n;
  }
  return Array.isArray(reactions) ? reactions.length : 1;
}
