/**
 * A TCP proxy in front of fanout that the test can break: `cut()` resets every connection and
 * refuses new ones until `restore()`; `stall()` stops forwarding on the open connections (a
 * network gone quiet: no FIN, no RST) while new ones pass. It also records, for each
 * connection, the id it asked to resume after (`Last-Event-ID` header or `last_event_id`).
 */

import net from "node:net";

export interface Proxy {
  url: string;
  /** The resume id of each connection in order (undefined: a fresh start). */
  resumes: (string | undefined)[];
  cut(): void;
  stall(): void;
  restore(): void;
  close(): Promise<void>;
}

function resumeIdOf(head: string): string | undefined {
  const header = /^last-event-id:\s*(\S+)\s*$/im.exec(head);
  if (header) return header[1];
  const param = /^GET \S*[?&]last_event_id=([^&\s]+)/.exec(head);
  return param ? decodeURIComponent(param[1]!) : undefined;
}

export async function startProxy(target: URL): Promise<Proxy> {
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket; stalled: boolean }>();
  const resumes: (string | undefined)[] = [];
  let refusing = false;
  const server = net.createServer((client) => {
    if (refusing) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(Number(target.port), target.hostname);
    const pair = { client, upstream, stalled: false };
    pairs.add(pair);
    let head = "";
    client.on("data", (chunk) => {
      if (!head.includes("\r\n\r\n")) {
        head += chunk.toString("latin1");
        if (head.includes("\r\n\r\n")) resumes.push(resumeIdOf(head));
      }
      if (!pair.stalled) upstream.write(chunk);
    });
    upstream.on("data", (chunk) => {
      if (!pair.stalled) client.write(chunk);
    });
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    resumes,
    cut() {
      refusing = true;
      for (const { client, upstream } of pairs) {
        client.resetAndDestroy();
        upstream.destroy();
      }
    },
    stall() {
      for (const pair of pairs) pair.stalled = true;
    },
    restore() {
      refusing = false;
    },
    close() {
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
