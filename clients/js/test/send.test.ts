import { describe, expect, test } from "vitest";
import { ConnectionFailedError, RateLimitedError, RequestRejectedError, ServiceUnavailableError } from "../src/errors.js";
import { sendReactions, type SendOptions } from "../src/send.js";

type Answer = { status: number; body?: unknown; headers?: Record<string, string> } | Error;

/** A fetch that gives `answers` in turn and records each request. */
function fakeFetch(answers: Answer[]) {
  const requests: { url: string; init: RequestInit }[] = [];
  const fetch = async (url: string, init: RequestInit = {}) => {
    requests.push({ url, init });
    const answer = answers.shift();
    if (answer === undefined) throw new Error("no more answers");
    if (answer instanceof Error) throw answer;
    const body = answer.body === undefined ? null : JSON.stringify(answer.body);
    return new Response(body, { status: answer.status, headers: answer.headers });
  };
  return { fetch, requests };
}

function options(fetch: SendOptions["fetch"], waits: number[], more: Partial<SendOptions> = {}): SendOptions {
  return {
    ingestUrl: "http://ingest.test/",
    fetch,
    timeoutMs: 1000,
    maxRetries: 3,
    maxRetryWaitMs: 30_000,
    random: () => 0,
    sleep: async (ms) => void waits.push(ms),
    ...more,
  };
}

const LIMITED = { status: 429, body: { type: "urn:emostream:problem:rate-limited", title: "Too many", status: 429, detail: "d" } };

describe("sendReactions", () => {
  test("posts a batch as JSON with the sender token and returns the accepted count", async () => {
    const { fetch, requests } = fakeFetch([{ status: 202, body: { accepted: 2 } }]);
    const batch = [{ user_id: "u1", emoji: "❤️" }, { emoji: "😂", ts: 1764000000 }];
    const n = await sendReactions(options(fetch, [], { senderToken: "jwt" }), "final 1", batch);
    expect(n).toBe(2);
    expect(requests[0]!.url).toBe("http://ingest.test/v1/streams/final%201/reactions");
    expect(requests[0]!.init.method).toBe("POST");
    expect(JSON.parse(requests[0]!.init.body as string)).toEqual(batch);
    expect(requests[0]!.init.headers).toMatchObject({ Authorization: "Bearer jwt", "Content-Type": "application/json" });
  });

  test("waits Retry-After on 429 and 503, then succeeds", async () => {
    const waits: number[] = [];
    const { fetch, requests } = fakeFetch([
      { ...LIMITED, headers: { "Retry-After": "2" } },
      { status: 503, headers: { "Retry-After": "1" } },
      { status: 202, body: { accepted: 1 } },
    ]);
    expect(await sendReactions(options(fetch, waits), "s", { user_id: 1, emoji: "👏" })).toBe(1);
    expect(requests).toHaveLength(3);
    expect(waits).toEqual([2000, 1000]);
  });

  test("after a 503 that took part of a batch, sends again only what Kafka did not take", async () => {
    const waits: number[] = [];
    const partial = {
      status: 503,
      headers: { "Retry-After": "1" },
      body: { type: "urn:emostream:problem:kafka-unavailable", title: "Kafka refused", status: 503, accepted: 2, not_enqueued: [1, 3] },
    };
    const { fetch, requests } = fakeFetch([partial, { status: 202, body: { accepted: 2 } }]);
    const batch = ["a", "b", "c", "d"].map((user_id) => ({ user_id, emoji: "👏" }));
    expect(await sendReactions(options(fetch, waits), "s", batch)).toBe(4);
    expect(JSON.parse(requests[1]!.init.body as string)).toEqual([batch[1], batch[3]]);
    expect(waits).toEqual([1000]);
  });

  test("backs off without a Retry-After, capped by maxRetryWaitMs, and gives up after maxRetries", async () => {
    const waits: number[] = [];
    const { fetch, requests } = fakeFetch([{ status: 503 }, { status: 503 }, { status: 503 }]);
    const rejected = sendReactions(options(fetch, waits, { maxRetries: 2, maxRetryWaitMs: 2500 }), "s", { emoji: "👏" });
    await expect(rejected).rejects.toBeInstanceOf(ServiceUnavailableError);
    expect(requests).toHaveLength(3);
    expect(waits).toEqual([1500, 2500]); // 2000 and 4000 at the jitter's low end, the second capped
  });

  test("never retries bad input or an error other than 429 and 503", async () => {
    for (const status of [400, 422, 500]) {
      const { fetch, requests } = fakeFetch([{ status, body: { type: "t", title: "x", status, detail: "" } }, { status: 202 }]);
      await expect(sendReactions(options(fetch, []), "s", { emoji: "👏" })).rejects.toMatchObject({ status });
      expect(requests).toHaveLength(1);
    }
  });

  test("a rate limit left after the retries is a RateLimitedError with its problem", async () => {
    const { fetch } = fakeFetch([LIMITED]);
    const rejected = sendReactions(options(fetch, [], { maxRetries: 0 }), "s", { emoji: "👏" });
    await expect(rejected).rejects.toBeInstanceOf(RateLimitedError);
    await expect(rejected).rejects.toMatchObject({ type: "urn:emostream:problem:rate-limited", detail: "d" });
  });

  test("a network failure is not retried: the reactions may have been taken", async () => {
    const { fetch, requests } = fakeFetch([new TypeError("fetch failed"), { status: 202 }]);
    await expect(sendReactions(options(fetch, []), "s", { emoji: "👏" })).rejects.toBeInstanceOf(ConnectionFailedError);
    expect(requests).toHaveLength(1);
  });

  test("a server that does not answer in time is a ConnectionFailedError", async () => {
    const hang = (_url: string, init: RequestInit = {}) =>
      new Promise<Response>((_, reject) => init.signal!.addEventListener("abort", () => reject(init.signal!.reason)));
    const rejected = sendReactions(options(hang, [], { timeoutMs: 30 }), "s", { emoji: "👏" });
    await expect(rejected).rejects.toThrow(/no answer within 30 ms/);
  });

  test("an invalid stream id comes back as the server's 422", async () => {
    const problem = { type: "urn:emostream:problem:invalid-parameter", title: "Invalid stream id", status: 422, detail: "d" };
    const { fetch } = fakeFetch([{ status: 422, body: problem }]);
    await expect(sendReactions(options(fetch, []), "bad id!", { emoji: "👏" })).rejects.toBeInstanceOf(RequestRejectedError);
  });
});
