/**
 * `@emostream/client`: send emoji reactions to Emostream and follow a stream's swarms, in
 * browsers, React Native and Node 20, with no dependencies.
 */

export { EmostreamClient, type ClientOptions, type FollowOptions } from "./client.js";
export {
  ApiError,
  ConfigurationError,
  ConnectionFailedError,
  EmostreamError,
  RateLimitedError,
  RequestRejectedError,
  ServiceUnavailableError,
  type Problem,
} from "./errors.js";
export { backoffDelay, parseRetryAfter, retryAfterDelay } from "./backoff.js";
export type { Reaction } from "./send.js";
export { SSEParser, type SSEEvent } from "./sse.js";
export { parseSwarm, type SwarmMessage } from "./swarm.js";
export { ResumePoint } from "./resume.js";
export {
  DEFAULT_HEARTBEAT_TIMEOUT_MS,
  pickTransport,
  subscribe,
  type FeedState,
  type SubscribeOptions,
  type Subscription,
  type TokenSource,
  type Transport,
} from "./subscribe.js";
export type { WebSocketConstructor, WebSocketLike } from "./feeds.js";
