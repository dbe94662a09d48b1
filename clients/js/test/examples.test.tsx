import { afterEach, describe, expect, test, vi } from "vitest";
import { hooks, render, rootProps, textOf } from "./support/renderer.js";
import { FakeStream, sseServer, swarmFrame, until, webSocketServer } from "./support/fakes.js";

vi.mock("react", async (original) => ({ ...(await original<typeof import("react")>()), ...hooks }));

const ID = (n: number) => `00000000000${n}-1764000000000`;

/** A swarm of window `w` with `counts`, as one WebSocket message. */
function wsMessage(n: number, w: number, counts: Record<string, number>): string {
  const frame = JSON.parse(swarmFrame(ID(n), counts).split("data: ")[1]!);
  return JSON.stringify({ ...frame, window_start: `2025-11-24T16:00:0${w}.000Z` });
}

afterEach(() => {
  vi.unstubAllGlobals();
  vi.resetModules();
});

describe("the React example", () => {
  test("LiveCounts shows each window's newest counts added up, and closes its feed on unmount", async () => {
    const stream = new FakeStream();
    const server = sseServer([{ stream }]);
    vi.stubGlobal("fetch", server.fetch);
    const { LiveCounts } = await import("../examples/react/LiveCounts.js");
    const page = render(LiveCounts, { streamId: "final" });
    expect(rootProps(page.output)["aria-label"]).toBe("Reactions (connecting)");

    await server.requested(1);
    expect(server.requests[0]!.url).toBe("https://live.example.com/v1/streams/final/events");
    stream.write(swarmFrame(ID(1), { "❤️": 10 }) + swarmFrame(ID(2), { "❤️": 1200, "😂": 3 }));
    await until(() => textOf(page.output).includes("1,200"));
    expect(rootProps(page.output)["aria-label"]).toBe("Reactions (open)");
    expect(textOf(page.output)).toBe("❤️ 1,200😂 3");

    page.unmount();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(server.requests).toHaveLength(1); // closed, not reconnecting
  });
});

describe("the React Native example", () => {
  test("follows over WebSocket with a fresh token and adds up windows", async () => {
    const sockets = webSocketServer();
    vi.stubGlobal("WebSocket", sockets.WebSocket);
    vi.stubGlobal("fetch", async (url: string) => new Response(url.endsWith("/emostream-token") ? "tok-1" : "", { status: 200 }));
    const { LiveCounts } = await import("../examples/react-native/LiveCounts.js");
    const screen = render(LiveCounts, { streamId: "final" });

    await until(() => sockets.sockets.length === 1);
    const socket = sockets.sockets[0]!;
    expect(socket.url).toBe("wss://live.example.com/v1/streams/final/ws?token=tok-1&heartbeat=1");
    socket.open();
    socket.send(wsMessage(1, 0, { "👏": 4 }));
    socket.send(wsMessage(2, 2, { "👏": 6, "😡": 1 }));
    await until(() => textOf(screen.output) === "👏 10😡 1");
    expect(rootProps(screen.output).accessibilityLabel).toBe("Reactions (open)");
    screen.unmount();
    expect(socket.closedByClient).toBe(true);
  });
});
