import { describe, expect, test } from "vitest";
import { backoffDelay, MAX_BACKOFF_MS, parseRetryAfter, retryAfterDelay } from "../src/backoff.js";

describe("backoffDelay", () => {
  test("doubles per attempt from the base and stops at the cap", () => {
    const middle = () => 0.5; // no jitter
    expect([0, 1, 2, 3].map((a) => backoffDelay(a, 2000, MAX_BACKOFF_MS, middle))).toEqual([2000, 4000, 8000, 16000]);
    expect(backoffDelay(10, 2000, MAX_BACKOFF_MS, middle)).toBe(30000);
  });

  test("jitters by 25 % either way", () => {
    expect(backoffDelay(0, 1000, MAX_BACKOFF_MS, () => 0)).toBe(750);
    expect(backoffDelay(0, 1000, MAX_BACKOFF_MS, () => 0.999999)).toBe(1250);
    const seen = new Set(Array.from({ length: 50 }, () => backoffDelay(2, 1000)));
    expect(seen.size).toBeGreaterThan(10);
    for (const d of seen) expect(d).toBeGreaterThanOrEqual(3000), expect(d).toBeLessThanOrEqual(5000);
  });
});

describe("Retry-After", () => {
  test("reads delay-seconds and HTTP dates, in milliseconds", () => {
    const now = Date.parse("2025-01-01T00:00:00Z");
    expect(parseRetryAfter("7", now)).toBe(7000);
    expect(parseRetryAfter(" 0 ", now)).toBe(0);
    expect(parseRetryAfter("Wed, 01 Jan 2025 00:00:05 GMT", now)).toBe(5000);
    expect(parseRetryAfter("Tue, 31 Dec 2024 23:59:00 GMT", now)).toBe(0);
  });

  test("ignores what it cannot read", () => {
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter("soon")).toBeUndefined();
    expect(parseRetryAfter("-3")).toBeUndefined();
  });

  test("is never shortened, only spread later", () => {
    expect(retryAfterDelay(4000, () => 0)).toBe(4000);
    expect(retryAfterDelay(4000, () => 0.999999)).toBe(5000);
  });
});
