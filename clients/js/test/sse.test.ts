import { describe, expect, test } from "vitest";
import { SSEParser } from "../src/sse.js";

const FRAME = 'retry: 2000\n\nid: 000000000001-1\nevent: swarm\ndata: {"a":1}\n\n: hb\n\n';

describe("SSEParser", () => {
  test("parses a fanout feed: retry hint, a swarm, a heartbeat", () => {
    const parser = new SSEParser();
    expect(parser.feed(FRAME)).toEqual([{ event: "swarm", data: '{"a":1}', id: "000000000001-1" }]);
    expect(parser.retryMs).toBe(2000);
    expect(parser.comments).toBe(1);
    expect(parser.lastEventId).toBe("000000000001-1");
  });

  test("gives the same events however the text is split, CRLF included", () => {
    const text = FRAME.replaceAll("\n", "\r\n");
    const whole = new SSEParser().feed(text);
    for (let cut = 1; cut < text.length; cut += 1) {
      const parser = new SSEParser();
      expect([...parser.feed(text.slice(0, cut)), ...parser.feed(text.slice(cut))]).toEqual(whole);
    }
  });

  test("follows the browser's rules for fields", () => {
    const parser = new SSEParser();
    const events = parser.feed("\ufeffdata:one\ndata:  two\n\nid: a\0b\ndata\n\nevent: x\n\nretry: 1s\ndata: z\r\r");
    expect(events).toEqual([
      { event: "message", data: "one\n two", id: undefined },
      { event: "message", data: "", id: undefined },
      { event: "message", data: "z", id: undefined },
    ]);
    expect(parser.retryMs).toBeUndefined();
  });

  test("keeps the last id across events without one", () => {
    const parser = new SSEParser();
    const events = parser.feed("id: 7\ndata: a\n\ndata: b\n\n");
    expect(events.map((e) => e.id)).toEqual(["7", "7"]);
  });
});
