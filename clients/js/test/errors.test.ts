import { describe, expect, test } from "vitest";
import {
  ApiError,
  EmostreamError,
  RateLimitedError,
  RequestRejectedError,
  ServiceUnavailableError,
  apiError,
  toProblem,
} from "../src/errors.js";
import { errorOf } from "../src/http.js";

const PROBLEM = {
  type: "urn:emostream:problem:invalid-reactions",
  title: "Invalid reactions",
  status: 422,
  detail: "item 3: emoji is not in the emoji set",
  errors: [{ index: 3, field: "emoji" }],
};

describe("error mapping", () => {
  test("one hierarchy: the class follows the status", () => {
    const url = "http://ingest/x";
    const cases: [number, typeof ApiError][] = [
      [400, RequestRejectedError],
      [401, RequestRejectedError],
      [422, RequestRejectedError],
      [429, RateLimitedError],
      [500, ServiceUnavailableError],
      [503, ServiceUnavailableError],
    ];
    for (const [status, cls] of cases) {
      const error = apiError({ ...PROBLEM, status }, url);
      expect(error).toBeInstanceOf(cls);
      expect(error).toBeInstanceOf(ApiError);
      expect(error).toBeInstanceOf(EmostreamError);
      expect(error.name).toBe(cls.name);
    }
  });

  test("a problem document keeps its members and extensions", async () => {
    const response = new Response(JSON.stringify(PROBLEM), {
      status: 422,
      headers: { "Content-Type": "application/problem+json" },
    });
    const error = await errorOf(response, "http://ingest/v1/streams/s/reactions");
    expect(error).toBeInstanceOf(RequestRejectedError);
    expect([error.status, error.type, error.title, error.detail]).toEqual([422, PROBLEM.type, PROBLEM.title, PROBLEM.detail]);
    expect(error.problem.errors).toEqual(PROBLEM.errors);
    expect(error.message).toBe(`422 Invalid reactions: ${PROBLEM.detail} (http://ingest/v1/streams/s/reactions)`);
  });

  test("a 429 carries its Retry-After in milliseconds", async () => {
    const body = { type: "urn:emostream:problem:rate-limited", title: "Too many", status: 429, detail: "slow down" };
    const response = new Response(JSON.stringify(body), { status: 429, headers: { "Retry-After": "3" } });
    const error = await errorOf(response, "u");
    expect(error).toBeInstanceOf(RateLimitedError);
    expect(error.retryAfterMs).toBe(3000);
  });

  test("an answer that is not a problem document still gets the four members", () => {
    expect(toProblem(502, "Bad Gateway", "<html>upstream</html>")).toEqual({
      type: "about:blank",
      title: "Bad Gateway",
      status: 502,
      detail: "<html>upstream</html>",
    });
    expect(toProblem(503, "", "[1]")).toMatchObject({ title: "HTTP 503", status: 503 });
  });
});
