/** What both services' error answers have in common, read from a fetch `Response`. */

import { ApiError, ConfigurationError, apiError, toProblem } from "./errors.js";
import { parseRetryAfter } from "./backoff.js";

export type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

/**
 * The fetch to use: the app's own, else the platform's. Called through `globalThis`, since a
 * browser's fetch refuses to run detached from `window`.
 */
export function resolveFetch(given?: Fetch): Fetch {
  if (given) return given;
  if (typeof globalThis.fetch !== "function") {
    throw new ConfigurationError("no fetch here: pass one as the `fetch` option");
  }
  return (input, init) => globalThis.fetch(input, init);
}

/** The error an error answer stands for, with its problem document and `Retry-After`. */
export async function errorOf(response: Response, url: string): Promise<ApiError> {
  let body = "";
  try {
    body = await response.text();
  } catch {
    // The body broke off: the status line is still worth reporting.
  }
  const problem = toProblem(response.status, response.statusText, body);
  return apiError(problem, url, parseRetryAfter(response.headers.get("Retry-After")));
}

/**
 * A signal that aborts after `ms` or with `outer`, by hand: React Native has neither
 * `AbortSignal.timeout` nor `AbortSignal.any`.
 */
export function abortAfter(
  ms: number,
  outer?: AbortSignal,
): { signal: AbortSignal; expired: () => boolean; clear: () => void } {
  const controller = new AbortController();
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    controller.abort();
  }, ms);
  const follow = () => controller.abort(outer?.reason);
  if (outer?.aborted) follow();
  else outer?.addEventListener("abort", follow, { once: true });
  return {
    signal: controller.signal,
    expired: () => expired,
    clear: () => {
      clearTimeout(timer);
      outer?.removeEventListener("abort", follow);
    },
  };
}
