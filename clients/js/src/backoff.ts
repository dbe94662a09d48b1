/**
 * How long to wait before trying again. Delays double per consecutive failure up to a cap, and
 * each is jittered by ±25 % so that the many viewers of a restarted pod do not all come back at
 * the same instant; a server's `Retry-After` is a floor, never shortened.
 */

/** The longest wait between attempts, whatever the failures. */
export const MAX_BACKOFF_MS = 30_000;

/** `baseMs` doubled `attempt` times (0: once), capped at `maxMs`, then jittered by ±25 %. */
export function backoffDelay(
  attempt: number,
  baseMs: number,
  maxMs: number = MAX_BACKOFF_MS,
  random: () => number = Math.random,
): number {
  const delay = Math.min(baseMs * 2 ** Math.max(0, attempt), maxMs);
  return Math.round(delay * (0.75 + random() * 0.5));
}

/** A server's `Retry-After` plus up to 25 % more, so its clients spread out after the wait. */
export function retryAfterDelay(retryAfterMs: number, random: () => number = Math.random): number {
  return Math.round(retryAfterMs * (1 + random() * 0.25));
}

/**
 * Milliseconds to wait from a `Retry-After` value: delay-seconds or an HTTP date (RFC 9110
 * 10.2.3); undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // An HTTP date names its month; without the test, Date.parse would read "-3" as a year.
  const when = /[a-z]/i.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(when)) return undefined;
  return Math.max(0, when - nowMs);
}
