// The recent windows of one stream, as the charts need them.
//
// The feed sends running totals: a window arrives several times and its last message holds the
// final counts, so each window keeps only its newest message (ids sort in emission order within
// a stream). Windows with no reactions are never sent at all; the series fill such gaps with
// zero counts (nobody reacted) and a missing sentiment (nothing to average), so the lines drop
// to zero instead of joining two busy windows across a quiet minute.

/** A window message's fields the page uses, or null when the message is not a usable window. */
export function parseWindow(message) {
  const start = Date.parse(message.window_start);
  const end = Date.parse(message.window_end);
  if (!Number.isFinite(start) || !Number.isFinite(end) || end <= start) return null;
  const counts = {};
  for (const [emoji, n] of Object.entries(message.counts || {})) {
    if (Number.isFinite(n) && n > 0) counts[emoji] = n;
  }
  const swarm = {};
  for (const [emoji, n] of Object.entries(message.swarm || {})) {
    if (Number.isFinite(n) && n > 0) swarm[emoji] = n;
  }
  const sentiment = Number.isFinite(message.sentiment) ? message.sentiment : null;
  const id = typeof message.id === "string" ? message.id : null;
  return { id, start, end, counts, swarm, sentiment };
}

export class WindowHistory {
  /** Keeps the windows that end within `spanMs` of the newest window's end. */
  constructor(spanMs) {
    this.spanMs = spanMs;
    this.windows = new Map(); // window start (ms) -> parsed window
    this.firstSeen = new Map(); // emoji -> order of first appearance, for stable colours
    this.latestEnd = null;
  }

  /**
   * Takes one message; returns `{window, previous}` when it is news (`previous` is the earlier
   * message of the same window, if any), or null for a stale, repeated or unusable message.
   */
  record(message) {
    const window = parseWindow(message);
    if (window === null) return null;
    const previous = this.windows.get(window.start);
    if (previous && previous.id !== null && window.id !== null && window.id <= previous.id) {
      return null;
    }
    if (this.latestEnd !== null && window.end <= this.latestEnd - this.spanMs) return null;
    this.windows.set(window.start, window);
    for (const emoji of Object.keys(window.counts)) {
      if (!this.firstSeen.has(emoji)) this.firstSeen.set(emoji, this.firstSeen.size);
    }
    if (this.latestEnd === null || window.end > this.latestEnd) {
      this.latestEnd = window.end;
      this.trim();
    }
    return { window, previous };
  }

  trim() {
    const oldest = this.latestEnd - this.spanMs;
    for (const [start, window] of this.windows) {
      if (window.end <= oldest) this.windows.delete(start);
    }
  }

  /** The window with the latest start, or null before the first message. */
  latest() {
    let latest = null;
    for (const window of this.windows.values()) {
      if (latest === null || window.start > latest.start) latest = window;
    }
    return latest;
  }

  /** Emojis with a count in the kept windows, in order of first appearance. */
  emojis() {
    const present = new Set();
    for (const window of this.windows.values()) {
      for (const emoji of Object.keys(window.counts)) present.add(emoji);
    }
    return [...present].sort((a, b) => this.firstSeen.get(a) - this.firstSeen.get(b));
  }

  /**
   * The x range the charts show, in seconds: the span up to the newest window's end, or less
   * while the page has seen less (so a page opened a minute ago fills its width).
   */
  range() {
    if (this.latestEnd === null) return null;
    let first = this.latestEnd;
    for (const start of this.windows.keys()) first = Math.min(first, start);
    return [Math.max(this.latestEnd - this.spanMs, first) / 1000, this.latestEnd / 1000];
  }

  /**
   * Chart columns: `x` (window starts, seconds), one count column per emoji of `emojis` and a
   * sentiment column; a gap between windows gets zero counts and no sentiment at its edges.
   */
  series(emojis) {
    const ordered = [...this.windows.values()].sort((a, b) => a.start - b.start);
    const x = [];
    const counts = emojis.map(() => []);
    const sentiment = [];
    const point = (start, window) => {
      x.push(start / 1000);
      emojis.forEach((emoji, i) => counts[i].push(window ? window.counts[emoji] || 0 : 0));
      sentiment.push(window ? window.sentiment : null);
    };
    let previous = null;
    for (const window of ordered) {
      if (previous !== null) {
        const width = previous.end - previous.start;
        if (window.start - previous.end >= width) point(previous.end, null);
        if (window.start - previous.end >= 2 * width) point(window.start - width, null);
      }
      point(window.start, window);
      previous = window;
    }
    return { x, counts, sentiment };
  }

  get size() {
    return this.windows.size;
  }
}
