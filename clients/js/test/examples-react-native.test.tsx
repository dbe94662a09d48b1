import { act } from "react";
import { create, type ReactTestRenderer, type ReactTestRendererJSON, type ReactTestRendererNode } from "react-test-renderer";
import { afterEach, expect, test, vi } from "vitest";
import { rendered } from "./support/react.js";
import { swarmFrame, webSocketServer } from "./support/fakes.js";

// What react-native's own jest setup declares: react-test-renderer then renders as for React Native.
declare global {
  var IS_REACT_NATIVE_TEST_ENVIRONMENT: boolean | undefined;
}
globalThis.IS_REACT_NATIVE_TEST_ENVIRONMENT = true;

const ID = (n: number) => `00000000000${n}-1764000000000`;

/** A swarm of window `w` with `counts`, as one WebSocket message. */
function wsMessage(n: number, w: number, counts: Record<string, number>): string {
  const frame = JSON.parse(swarmFrame(ID(n), counts).split("data: ")[1]!);
  return JSON.stringify({ ...frame, window_start: `2025-11-24T16:00:0${w}.000Z` });
}

/** The text a rendered host tree shows, children joined. */
function textOf(node: ReactTestRendererNode | ReactTestRendererNode[] | null): string {
  if (node === null) return "";
  if (typeof node === "string") return node;
  if (Array.isArray(node)) return node.map(textOf).join("");
  return textOf(node.children);
}

afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllGlobals();
  vi.resetModules();
});

test("the React Native example follows over WebSocket with a fresh token and adds up windows", async () => {
  const warnings = vi.spyOn(console, "error");
  const sockets = webSocketServer();
  vi.stubGlobal("WebSocket", sockets.WebSocket);
  vi.stubGlobal("fetch", async (url: string) => new Response(url.endsWith("/emostream-token") ? "tok-1" : "", { status: 200 }));
  const { LiveCounts } = await import("../examples/react-native/LiveCounts.js");
  let screen!: ReactTestRenderer;
  act(() => {
    screen = create(<LiveCounts streamId="final" />);
  });
  const view = () => screen.toJSON() as ReactTestRendererJSON;
  expect(view().type).toBe("View");
  expect(view().props.accessibilityLabel).toBe("Reactions (connecting)");

  await rendered(() => sockets.sockets.length === 1);
  const socket = sockets.sockets[0]!;
  expect(socket.url).toBe("wss://live.example.com/v1/streams/final/ws?token=tok-1&heartbeat=1");
  act(() => {
    socket.open();
    socket.send(wsMessage(1, 0, { "👏": 4 }));
    socket.send(wsMessage(2, 2, { "👏": 6, "😡": 1 }));
  });
  expect(textOf(view())).toBe("👏 10😡 1");
  expect(view().children!.map((row) => typeof row !== "string" && row.type)).toEqual(["Text", "Text"]);
  expect(view().props.accessibilityLabel).toBe("Reactions (open)");

  act(() => screen.unmount());
  expect(screen.toJSON()).toBeNull();
  expect(socket.closedByClient).toBe(true);
  expect(warnings).not.toHaveBeenCalled();
});
