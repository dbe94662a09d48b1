// @vitest-environment happy-dom
import { act } from "react";
import { createRoot } from "react-dom/client";
import { afterEach, expect, test, vi } from "vitest";
import { rendered } from "./support/react.js";
import { FakeStream, sseServer, swarmFrame } from "./support/fakes.js";

const ID = (n: number) => `00000000000${n}-1764000000000`;

afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllGlobals();
  vi.resetModules();
});

test("the React example's LiveCounts shows each window's newest counts added up, and closes its feed on unmount", async () => {
  const warnings = vi.spyOn(console, "error");
  const stream = new FakeStream();
  const server = sseServer([{ stream }]);
  const signals: (AbortSignal | null | undefined)[] = [];
  vi.stubGlobal("fetch", (url: string, init: RequestInit) => {
    signals.push(init.signal);
    return server.fetch(url, init);
  });
  const { LiveCounts } = await import("../examples/react/LiveCounts.js");
  const page = document.createElement("div");
  const root = createRoot(page);
  const label = () => page.querySelector("section")?.getAttribute("aria-label");

  act(() => root.render(<LiveCounts streamId="final" />));
  expect(label()).toBe("Reactions (connecting)");

  await rendered(() => server.requests.length === 1);
  expect(server.requests[0]!.url).toBe("https://live.example.com/v1/streams/final/events");
  stream.write(swarmFrame(ID(1), { "❤️": 10 }) + swarmFrame(ID(2), { "❤️": 1200, "😂": 3 }));
  await rendered(() => page.textContent!.includes("1,200"));
  expect(label()).toBe("Reactions (open)");
  expect([...page.querySelectorAll("p")].map((row) => row.textContent)).toEqual(["❤️ 1,200", "😂 3"]);

  act(() => root.unmount());
  expect(page.textContent).toBe("");
  expect(signals[0]?.aborted).toBe(true);
  await new Promise((resolve) => setTimeout(resolve, 50));
  expect(server.requests).toHaveLength(1); // closed, not reconnecting
  expect(warnings).not.toHaveBeenCalled();
});
