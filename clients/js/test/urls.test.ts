import { expect, test } from "vitest";
import { ConfigurationError } from "../src/errors.js";
import { eventsUrl, reactionsUrl, websocketUrl } from "../src/urls.js";
import { parseSwarm } from "../src/swarm.js";

test("feeds carry the token and, on WebSocket, the id to resume after in the query", () => {
  expect(eventsUrl("http://f:8080/", "a b")).toBe("http://f:8080/v1/streams/a%20b/events");
  expect(eventsUrl("https://f", "s", "t+1")).toBe("https://f/v1/streams/s/events?token=t%2B1");
  expect(websocketUrl("https://f", "s", "t", "000000000007-1")).toBe(
    "wss://f/v1/streams/s/ws?token=t&last_event_id=000000000007-1&heartbeat=1",
  );
  expect(websocketUrl("http://f", "s")).toBe("ws://f/v1/streams/s/ws?heartbeat=1");
  expect(reactionsUrl("http://i//", "s")).toBe("http://i/v1/streams/s/reactions");
});

test("a relative service URL is a configuration error", () => {
  expect(() => eventsUrl("/v1", "s")).toThrow(ConfigurationError);
});

test("parseSwarm takes swarm messages and refuses anything else", () => {
  const swarm = {
    id: "000000000001-1764000000000",
    stream_id: "s",
    window_start: "2025-11-24T16:00:00.000Z",
    window_end: "2025-11-24T16:00:02.000Z",
    counts: { "❤️": 2500 },
    swarm: { "❤️": 3 },
    viewers: 4,
  };
  expect(parseSwarm(JSON.stringify(swarm))).toEqual(swarm);
  for (const bad of ["{", "[]", "null", JSON.stringify({ ...swarm, id: 7 }), JSON.stringify({ ...swarm, counts: { x: "1" } })]) {
    expect(parseSwarm(bad)).toBeUndefined();
  }
});
