/**
 * An incremental Server-Sent Events parser (WHATWG HTML, "Server-sent events", 9.2.6).
 *
 * Text goes in as the network delivers it, split anywhere (between the CR and LF of a line break
 * too); complete events come out. It follows the browser algorithm: lines end with CRLF, LF or CR;
 * `:` starts a comment (the server's heartbeats); a field's value loses one leading space; several
 * `data` lines join with LF; a blank line dispatches, and a block without data dispatches nothing;
 * `id` sets the last event id (kept across events, ignored if it holds NUL); `retry` takes only
 * ASCII digits.
 */

export interface SSEEvent {
  /** `message` when the block named no type. */
  event: string;
  data: string;
  /** The last event id at dispatch, undefined before any. */
  id: string | undefined;
}

const LINE_END = /\r\n|\r|\n/g;

export class SSEParser {
  /** The id to resume after ("" before any). */
  lastEventId = "";
  /** The reconnection delay the server asked for, once it did. */
  retryMs: number | undefined;
  /** Comment lines seen: heartbeats of a quiet feed. */
  comments = 0;

  private buffer = "";
  private started = false;
  private skipLineFeed = false;
  private data: string[] = [];
  private type = "";
  private idBuffer = "";

  /** Parses the next piece of the stream; returns the events it completes. */
  feed(text: string): SSEEvent[] {
    if (!text) return [];
    if (!this.started) {
      this.started = true;
      if (text.startsWith("\ufeff")) text = text.slice(1);
    }
    if (this.skipLineFeed) {
      // The previous piece ended with CR: a LF now is the second half of that CRLF.
      this.skipLineFeed = false;
      if (text.startsWith("\n")) text = text.slice(1);
    }
    const buffer = this.buffer + text;
    const events: SSEEvent[] = [];
    let pos = 0;
    for (const match of buffer.matchAll(LINE_END)) {
      const event = this.line(buffer.slice(pos, match.index));
      if (event !== undefined) events.push(event);
      pos = match.index + match[0].length;
    }
    this.skipLineFeed = pos === buffer.length && pos > 0 && buffer[pos - 1] === "\r";
    this.buffer = buffer.slice(pos);
    return events;
  }

  private line(line: string): SSEEvent | undefined {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) {
      this.comments += 1;
      return undefined;
    }
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "data") this.data.push(value);
    else if (name === "event") this.type = value;
    else if (name === "id" && !value.includes("\0")) this.idBuffer = value;
    else if (name === "retry" && /^\d+$/.test(value)) this.retryMs = Number(value);
    return undefined;
  }

  private dispatch(): SSEEvent | undefined {
    this.lastEventId = this.idBuffer;
    const type = this.type;
    this.type = "";
    if (this.data.length === 0) return undefined;
    const event = { event: type || "message", data: this.data.join("\n"), id: this.lastEventId || undefined };
    this.data = [];
    return event;
  }
}
