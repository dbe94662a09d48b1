/**
 * The SDK's errors: one root, `EmostreamError`, and a subclass per thing a caller acts on.
 *
 * An error answer of a service is an `ApiError` carrying the RFC 9457 problem document the service
 * sent (`status`, `type`, `title`, `detail` and any extension members), so an app can show the
 * server's own explanation; its subclass says whether trying again can help.
 */

/** An RFC 9457 problem document as Emostream's services send them. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  [member: string]: unknown;
}

/** Root of every error the SDK throws or reports. */
export class EmostreamError extends Error {
  // Names are spelled out: a minifier renames classes, and apps log `error.name`.
  override name = "EmostreamError";
}

/** The SDK was set up in a way that cannot work here (no WebSocket, no fetch, a bad URL). */
export class ConfigurationError extends EmostreamError {
  override name = "ConfigurationError";
}

/** The service could not be reached, or the connection broke or went silent. */
export class ConnectionFailedError extends EmostreamError {
  override name = "ConnectionFailedError";
}

/** The service answered with an error status. */
export class ApiError extends EmostreamError {
  override name = "ApiError";
  readonly status: number;
  readonly type: string;
  readonly title: string;
  readonly detail: string;
  /** The whole problem document, extension members included (`errors`, `reason`, `limit`...). */
  readonly problem: Problem;
  readonly url: string;
  /** How long the server asked the client to wait (`Retry-After`), if it did. */
  readonly retryAfterMs: number | undefined;

  constructor(problem: Problem, url: string, retryAfterMs?: number) {
    const detail = problem.detail ? `: ${problem.detail}` : "";
    super(`${problem.status} ${problem.title}${detail} (${url})`);
    this.status = problem.status;
    this.type = problem.type;
    this.title = problem.title;
    this.detail = problem.detail;
    this.problem = problem;
    this.url = url;
    this.retryAfterMs = retryAfterMs;
  }
}

/** The request itself is wrong (a 4xx other than 429): sending it again will not help. */
export class RequestRejectedError extends ApiError {
  override name = "RequestRejectedError";
}

/** 429: the sender (or a cap of the stream registry) is over its rate; see `retryAfterMs`. */
export class RateLimitedError extends ApiError {
  override name = "RateLimitedError";
}

/** 503 or another 5xx: the service cannot take the request now; later may work. */
export class ServiceUnavailableError extends ApiError {
  override name = "ServiceUnavailableError";
}

/**
 * The problem document of an error answer: the body when it is one, else one made from the
 * status line, so that every `ApiError` has the same four members.
 */
export function toProblem(status: number, statusText: string, body: string): Problem {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    parsed = undefined;
  }
  const fallback = { type: "about:blank", title: statusText || `HTTP ${status}`, status, detail: "" };
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    return { ...fallback, detail: body.slice(0, 200) };
  }
  const doc = parsed as Record<string, unknown>;
  return {
    ...doc,
    type: typeof doc.type === "string" ? doc.type : fallback.type,
    title: typeof doc.title === "string" ? doc.title : fallback.title,
    status: typeof doc.status === "number" ? doc.status : status,
    detail: typeof doc.detail === "string" ? doc.detail : "",
  };
}

/** The error for an answer with `status`, of the subclass that says what to do about it. */
export function apiError(problem: Problem, url: string, retryAfterMs?: number): ApiError {
  const status = problem.status;
  if (status === 429) return new RateLimitedError(problem, url, retryAfterMs);
  if (status >= 500) return new ServiceUnavailableError(problem, url, retryAfterMs);
  return new RequestRejectedError(problem, url, retryAfterMs);
}
