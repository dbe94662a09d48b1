/**
 * The SDK against the real local stack: ingest, Kafka, Spark, fanout, started by
 * tests/client_js/test_sdk_against_stack.py, which names them in EMOSTREAM_TEST_* variables.
 *
 * On each transport: a burst arrives as exact totals; a quiet stream's connection stays open on
 * heartbeats alone; after a hard cut and after a silent stall
 * (found by the heartbeat watchdog), bursts sent while the viewer was away arrive from fanout's
 * replay buffer, with no swarm missing or repeated. The viewer goes through a proxy the test
 * breaks; a second, direct subscription says when the aggregation has emitted a burst.
 */

import { describe, expect, test } from "vitest";
import { EmostreamClient, RequestRejectedError, type Transport } from "@emostream/client";
import { sendBurst } from "../examples/send.js";
import { followTotals, type Totals } from "../examples/totals.js";
import { startProxy } from "./proxy.js";

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run tests/client_js/test_sdk_against_stack.py`);
  return value;
}

const INGEST_URL = required("EMOSTREAM_TEST_INGEST_URL");
const FANOUT_URL = required("EMOSTREAM_TEST_FANOUT_URL");
const SENDER_TOKEN = required("EMOSTREAM_TEST_SENDER_TOKEN");
const VIEWER_TOKEN = required("EMOSTREAM_TEST_VIEWER_TOKEN");
/** Fanout writes a heartbeat every second in this test (EMOSTREAM_HEARTBEAT_S=1). */
const HEARTBEAT_TIMEOUT_MS = 4000;
const PIPELINE_MS = 120_000;

function same(a: Totals, b: Totals): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].every((k) => a[k] === b[k]);
}

async function until(what: string, check: () => boolean, timeoutMs = PIPELINE_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function resumesWithoutGapOrRepeat(transport: Transport, streamId: string): Promise<void> {
  expect(typeof globalThis.WebSocket, "Node 20 needs --experimental-websocket for its WebSocket").toBe("function");
  const sender = new EmostreamClient({ ingestUrl: INGEST_URL, senderToken: SENDER_TOKEN });
  const proxy = await startProxy(new URL(FANOUT_URL));
  const viewer = new EmostreamClient({
    fanoutUrl: proxy.url,
    viewerToken: VIEWER_TOKEN,
    transport,
    heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS,
  });
  const watcher = new EmostreamClient({ fanoutUrl: FANOUT_URL, viewerToken: VIEWER_TOKEN, transport });
  const ids: string[] = [];
  let totals: Totals = {};
  let emitted: Totals = {};
  const subscription = followTotals(viewer, streamId, {
    onTotals: (now, swarm) => {
      totals = now;
      ids.push(swarm.id);
    },
  });
  const direct = followTotals(watcher, streamId, { onTotals: (now) => (emitted = now) });
  const expected: Totals = {};
  const burst = async (emoji: string, count: number) => {
    expect(await sendBurst(sender, streamId, emoji, count)).toBe(count);
    expected[emoji] = (expected[emoji] ?? 0) + count;
    await until(`the aggregation to emit ${count} ${emoji}`, () => same(emitted, expected));
  };
  try {
    await until("both feeds to open", () => subscription.state.state === "open" && direct.state.state === "open", 30_000);

    await burst("❤️", 1200);
    await burst("😂", 300);
    await until("the viewer's exact totals", () => same(totals, expected));

    // A quiet stream: heartbeats alone keep the connection (WebSocket's are texts, asked for).
    const quietFrom = proxy.resumes.length;
    await new Promise((resolve) => setTimeout(resolve, 2 * HEARTBEAT_TIMEOUT_MS));
    expect(proxy.resumes.length, "no reconnection while the stream was quiet").toBe(quietFrom);

    // A hard cut: connections reset, new ones refused while a burst goes by.
    const beforeCut = subscription.lastEventId;
    const afterCut = proxy.resumes.length;
    proxy.cut();
    await burst("👏", 700);
    expect(totals["👏"], "the viewer was away").toBeUndefined();
    proxy.restore();
    await until("the viewer to catch up after the cut", () => same(totals, expected));
    expect(beforeCut).toBeDefined();
    expect(proxy.resumes[afterCut], "the first connection after the cut resumes after the last swarm").toBe(beforeCut);

    // A stall: the connection stays open but carries nothing, heartbeats included.
    const beforeStall = subscription.lastEventId;
    const afterStall = proxy.resumes.length;
    proxy.stall();
    await burst("😍", 500);
    await until("the viewer to notice the silence and catch up", () => same(totals, expected));
    expect(proxy.resumes[afterStall]).toBe(beforeStall);

    expect(new Set(ids).size, "no swarm delivered twice").toBe(ids.length);
    expect(ids).toEqual([...ids].sort());
    expect(totals).toEqual(expected);
  } finally {
    subscription.close();
    direct.close();
    await proxy.close();
  }
}

describe("the SDK on the real stack", () => {
  test.concurrent("SSE: exact counts, resumed without gap or repeat after a cut and a stall", async () => {
    await resumesWithoutGapOrRepeat("sse", required("EMOSTREAM_TEST_SSE_STREAM"));
  });

  test.concurrent("WebSocket: exact counts, resumed without gap or repeat after a cut and a stall", async () => {
    await resumesWithoutGapOrRepeat("websocket", required("EMOSTREAM_TEST_WS_STREAM"));
  });

  test("ingest's and fanout's refusals arrive as typed errors with their problem documents", async () => {
    const streamId = required("EMOSTREAM_TEST_SSE_STREAM");
    const anonymous = new EmostreamClient({ ingestUrl: INGEST_URL, fanoutUrl: FANOUT_URL });
    const noToken = anonymous.send(streamId, { user_id: "u", emoji: "👏" });
    await expect(noToken).rejects.toBeInstanceOf(RequestRejectedError);
    await expect(noToken).rejects.toMatchObject({ status: 401, type: "urn:emostream:problem:invalid-token" });

    const sender = new EmostreamClient({ ingestUrl: INGEST_URL, senderToken: SENDER_TOKEN });
    const badEmoji = sender.send(streamId, [{ user_id: "u", emoji: "👏" }, { user_id: "v", emoji: "no" }]);
    await expect(badEmoji).rejects.toMatchObject({ status: 422, type: "urn:emostream:problem:invalid-reactions" });
    const error: unknown = await badEmoji.catch((e: unknown) => e);
    expect(JSON.stringify((error as RequestRejectedError).problem)).toContain("emoji");

    const feed = anonymous.subscribe(streamId, { onSwarm: () => {}, transport: "sse" });
    const refused = await feed.closed;
    expect(refused).toBeInstanceOf(RequestRejectedError);
    expect(refused).toMatchObject({ status: 401, type: "urn:emostream:problem:invalid-token" });
  });
});
