/** Fake servers for the unit tests: an SSE endpoint behind a fetch, and a WebSocket class. */

import type { WebSocketLike } from "../../src/feeds.js";

/** One SSE response the test writes to by hand. */
export class FakeStream {
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  readonly body = new ReadableStream<Uint8Array>({
    start: (controller) => {
      this.controller = controller;
    },
  });

  write(text: string): void {
    this.controller.enqueue(new TextEncoder().encode(text));
  }

  end(): void {
    this.controller.close();
  }

  break(): void {
    this.controller.error(new TypeError("network error"));
  }
}

export type SseAnswer = { stream: FakeStream } | { status: number; body?: unknown; headers?: Record<string, string> } | Error;

/** A fetch serving `answers` in turn (then hanging), recording each request's headers. */
export function sseServer(answers: SseAnswer[]) {
  const requests: { url: string; headers: Record<string, string> }[] = [];
  let waiting: (() => void)[] = [];
  const fetch = async (url: string, init: RequestInit = {}): Promise<Response> => {
    requests.push({ url, headers: { ...(init.headers as Record<string, string>) } });
    const wake = waiting;
    waiting = [];
    wake.forEach((check) => check());
    const answer = answers.shift();
    if (answer === undefined) {
      return new Promise((_, reject) => init.signal?.addEventListener("abort", () => reject(init.signal?.reason)));
    }
    if (answer instanceof Error) throw answer;
    if ("stream" in answer) {
      init.signal?.addEventListener("abort", () => answer.stream.break());
      return new Response(answer.stream.body, { headers: { "Content-Type": "text/event-stream" } });
    }
    const body = answer.body === undefined ? null : JSON.stringify(answer.body);
    return new Response(body, { status: answer.status, headers: answer.headers });
  };
  /** Resolves once `n` requests were made. */
  const requested = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => (requests.length >= n ? resolve() : waiting.push(check));
      check();
    });
  return { fetch, requests, requested };
}

/** An SSE frame of a swarm with id `id`, shaped as fanout writes it. */
export function swarmFrame(id: string, counts: Record<string, number> = { "❤️": 1 }): string {
  const message = {
    id,
    stream_id: "s",
    window_start: "2025-11-24T16:00:00.000Z",
    window_end: "2025-11-24T16:00:02.000Z",
    counts,
    swarm: Object.fromEntries(Object.entries(counts).map(([e, n]) => [e, Math.ceil(n / 1000)])),
  };
  return `id: ${id}\nevent: swarm\ndata: ${JSON.stringify(message)}\n\n`;
}

/** A WebSocket class whose instances the test drives; `sockets` lists them in creation order. */
export function webSocketServer() {
  const sockets: FakeSocket[] = [];
  class FakeSocket implements WebSocketLike {
    onopen: ((event: unknown) => void) | null = null;
    onmessage: ((event: { data: unknown }) => void) | null = null;
    onclose: ((event: { code: number; reason: string }) => void) | null = null;
    onerror: ((event: unknown) => void) | null = null;
    closedByClient = false;
    constructor(readonly url: string) {
      sockets.push(this);
    }
    close(): void {
      this.closedByClient = true;
    }
    open(): void {
      this.onopen?.({});
    }
    send(text: string): void {
      this.onmessage?.({ data: text });
    }
    serverClose(code: number): void {
      this.onclose?.({ code, reason: "" });
    }
  }
  return { WebSocket: FakeSocket, sockets };
}

/** Resolves once `predicate` holds, checking every few milliseconds (at most 2 s). */
export async function until(predicate: () => boolean): Promise<void> {
  for (let i = 0; i < 400; i += 1) {
    if (predicate()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error("condition not met within 2 s");
}
