import { afterEach, describe, expect, test } from "vitest";
import { ConfigurationError, ConnectionFailedError, RequestRejectedError, ServiceUnavailableError } from "../src/errors.js";
import { pickTransport, subscribe, type FeedState, type SubscribeOptions, type Subscription } from "../src/subscribe.js";
import type { SwarmMessage } from "../src/swarm.js";
import { FakeStream, sseServer, swarmFrame, until, webSocketServer } from "./support/fakes.js";

const ID = (n: number) => `00000000000${n}-1764000000000`;
const open: Subscription[] = [];

afterEach(() => {
  open.splice(0).forEach((s) => s.close());
});

function follow(options: Omit<SubscribeOptions, "fanoutUrl" | "streamId" | "onSwarm">) {
  const swarms: SwarmMessage[] = [];
  const states: FeedState[] = [];
  const subscription = subscribe({
    fanoutUrl: "http://fanout.test",
    streamId: "s",
    onSwarm: (swarm) => swarms.push(swarm),
    onState: (state) => states.push(state),
    random: () => 0.5, // no jitter
    ...options,
  });
  open.push(subscription);
  return { subscription, swarms, states };
}

describe("subscribe over SSE", () => {
  test("resumes with Last-Event-ID after a break, dropping what it already delivered", async () => {
    const first = new FakeStream();
    const second = new FakeStream();
    const server = sseServer([{ stream: first }, { stream: second }]);
    const { swarms, states, subscription } = follow({ fetch: server.fetch, transport: "sse" });

    await server.requested(1);
    first.write(`retry: 20\n\n${swarmFrame(ID(1))}${swarmFrame(ID(2))}`);
    await until(() => swarms.length === 2);
    first.break();
    await server.requested(2);
    second.write(swarmFrame(ID(2)) + swarmFrame(ID(3)));
    await until(() => swarms.length === 3);

    expect(server.requests[0]!.headers["Last-Event-ID"]).toBeUndefined();
    expect(server.requests[1]!.headers["Last-Event-ID"]).toBe(ID(2));
    expect(swarms.map((s) => s.id)).toEqual([ID(1), ID(2), ID(3)]);
    expect(subscription.lastEventId).toBe(ID(3));
    const waited = states.find((s) => s.state === "waiting");
    expect(waited).toMatchObject({ state: "waiting", delayMs: 20 });
    expect(states.filter((s) => s.state === "open")).toHaveLength(2);
  });

  test("doubles its wait per failed attempt from the server's hint, and starts over once open", async () => {
    const hinted = new FakeStream();
    const later = new FakeStream();
    const refused = new TypeError("fetch failed");
    const server = sseServer([{ stream: hinted }, refused, refused, refused, { stream: later }]);
    const { states } = follow({ fetch: server.fetch, transport: "sse" });
    await server.requested(1);
    hinted.write("retry: 10\n\n");
    await until(() => states.some((s) => s.state === "open"));
    hinted.break();
    await server.requested(5);
    later.end();
    await until(() => states.filter((s) => s.state === "waiting").length === 5);
    const waits = states.flatMap((s) => (s.state === "waiting" ? [s.delayMs] : []));
    expect(waits).toEqual([10, 20, 40, 80, 10]);
  });

  test("takes a silent connection for dead; heartbeats keep it open", async () => {
    const quiet = new FakeStream();
    const chatty = new FakeStream();
    const server = sseServer([{ stream: quiet }, { stream: chatty }]);
    const { states } = follow({ fetch: server.fetch, transport: "sse", heartbeatTimeoutMs: 60 });
    await server.requested(1);
    quiet.write(`retry: 5\n\n${swarmFrame(ID(1))}`);
    await server.requested(2); // the silent connection was replaced
    const dead = states.find((s) => s.state === "waiting");
    expect(dead).toMatchObject({ error: expect.any(ConnectionFailedError) });
    expect(String((dead as { error: Error }).error.message)).toMatch(/no heartbeat or swarm for 60 ms/);
    expect(server.requests[1]!.headers["Last-Event-ID"]).toBe(ID(1));

    const beat = setInterval(() => chatty.write(": hb\n\n"), 15);
    await new Promise((resolve) => setTimeout(resolve, 200));
    clearInterval(beat);
    expect(server.requests).toHaveLength(2);
  });

  test("stops on a refused request and reports the server's problem", async () => {
    const problem = { type: "urn:emostream:problem:invalid-token", title: "Viewer token refused", status: 401, detail: "expired" };
    const server = sseServer([{ status: 401, body: problem }]);
    const { subscription, states } = follow({ fetch: server.fetch, transport: "sse", viewerToken: () => "old" });
    const error = await subscription.closed;
    expect(error).toBeInstanceOf(RequestRejectedError);
    expect(error).toMatchObject({ status: 401, detail: "expired" });
    expect(states.at(-1)).toEqual({ state: "closed", error });
    expect(server.requests[0]!.url).toBe("http://fanout.test/v1/streams/s/events?token=old");
  });

  test("waits a busy worker's Retry-After, and retries refusals when told to", async () => {
    const stream = new FakeStream();
    const server = sseServer([{ status: 503, headers: { "Retry-After": "0" } }, { status: 403 }, { stream }]);
    const { states, subscription } = follow({ fetch: server.fetch, transport: "sse", shouldRetry: () => true });
    await until(() => states.filter((s) => s.state === "waiting").length === 2);
    expect(states.at(-1)).toMatchObject({ delayMs: 4000 }); // the second failure in a row
    subscription.reconnectNow();
    await server.requested(3);
    const errors = states.flatMap((s) => (s.state === "waiting" ? [s.error] : []));
    expect(errors[0]).toBeInstanceOf(ServiceUnavailableError);
    expect(states.find((s) => s.state === "waiting")).toMatchObject({ delayMs: 0 });
    expect(errors[1]).toBeInstanceOf(RequestRejectedError);
  });

  test("a 204 ends the feed for good, and so does close()", async () => {
    const server = sseServer([{ status: 204 }]);
    const { subscription } = follow({ fetch: server.fetch, transport: "sse" });
    expect(await subscription.closed).toBeUndefined();
    expect(subscription.state).toEqual({ state: "closed" });

    const stream = new FakeStream();
    const other = sseServer([{ stream }]);
    const second = follow({ fetch: other.fetch, transport: "sse" });
    await other.requested(1);
    second.subscription.close();
    expect(await second.subscription.closed).toBeUndefined();
    expect(other.requests).toHaveLength(1);
  });
});

describe("subscribe over WebSocket", () => {
  const data = (n: number) => swarmFrame(ID(n)).split("data: ")[1]!.trim();

  test("resumes through the last_event_id query parameter and drops repeats", async () => {
    const server = webSocketServer();
    const { swarms, states, subscription } = follow({ transport: "websocket", WebSocket: server.WebSocket, viewerToken: "t" });
    await until(() => server.sockets.length === 1);
    const first = server.sockets[0]!;
    first.open();
    first.send(data(1));
    first.send(data(2));
    first.serverClose(1006);
    await until(() => states.at(-1)?.state === "waiting");
    expect(states.at(-1)).toMatchObject({ delayMs: 2000, error: expect.any(ConnectionFailedError) });
    subscription.reconnectNow();
    await until(() => server.sockets.length === 2);
    const second = server.sockets[1]!;
    second.open();
    second.send(data(2));
    second.send(data(3));
    await until(() => swarms.length === 3);

    expect(first.url).toBe("ws://fanout.test/v1/streams/s/ws?token=t&heartbeat=1");
    expect(second.url).toBe(`ws://fanout.test/v1/streams/s/ws?token=t&last_event_id=${ID(2)}&heartbeat=1`);
    expect(swarms.map((s) => s.id)).toEqual([ID(1), ID(2), ID(3)]);
  });

  test("a drain's close 1001 reconnects; a silent socket is closed and replaced", async () => {
    const server = webSocketServer();
    const { states, subscription } = follow({ transport: "websocket", WebSocket: server.WebSocket, heartbeatTimeoutMs: 50 });
    await until(() => server.sockets.length === 1);
    server.sockets[0]!.open();
    server.sockets[0]!.serverClose(1001);
    await until(() => states.at(-1)?.state === "waiting");
    expect(String((states.at(-1) as { error: Error }).error.message)).toMatch(/server ended the feed/);
    subscription.reconnectNow();
    await until(() => server.sockets.length === 2);
    server.sockets[1]!.open();
    await until(() => server.sockets[1]!.closedByClient);
    expect(String((states.at(-1) as { error: Error }).error.message)).toMatch(/no heartbeat or swarm for 50 ms/);
  });

  test("without a WebSocket class the subscription fails at once, naming the way out", () => {
    const saved = (globalThis as { WebSocket?: unknown }).WebSocket;
    delete (globalThis as { WebSocket?: unknown }).WebSocket;
    try {
      expect(() => subscribe({ fanoutUrl: "http://f", streamId: "s", onSwarm: () => {}, transport: "websocket" })).toThrow(
        ConfigurationError,
      );
    } finally {
      if (saved !== undefined) (globalThis as { WebSocket?: unknown }).WebSocket = saved;
    }
  });
});

test("auto picks WebSocket on React Native and SSE elsewhere", () => {
  expect(pickTransport("auto")).toBe("sse");
  const nav = Object.getOwnPropertyDescriptor(globalThis, "navigator");
  Object.defineProperty(globalThis, "navigator", { value: { product: "ReactNative" }, configurable: true });
  try {
    expect(pickTransport("auto")).toBe("websocket");
    expect(pickTransport("sse")).toBe("sse");
  } finally {
    if (nav) Object.defineProperty(globalThis, "navigator", nav);
    else delete (globalThis as { navigator?: unknown }).navigator;
  }
});
