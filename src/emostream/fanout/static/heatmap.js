// The heatmap: one row per emoji, one column per window of the last 5 minutes, each cell's colour
// the emoji's count in that window. Plain DOM (a CSS grid of cells), so every cell carries its
// count as an attribute and a tooltip, and the page's strict CSP holds: colours and the column
// count are set through element.style, never as inline style text. A cell's colour is laid over
// the page's own background (a one-colour gradient), so empty cells stay blank in either scheme.

import { clock } from "./charts.js";

// One hue whose opacity grows with the count reads in light and dark schemes alike.
const HUE = [228, 87, 46];

/**
 * The heatmap's cells from `history`: `starts` (each column's window start, ms, oldest first),
 * `width` (a window's length, ms), `rows` (emoji -> count per column, 0 where nobody reacted or
 * the feed sent nothing) and `max` (the largest count). Null before the first window.
 */
export function heatmapGrid(history, emojis) {
  const latest = history.latest();
  const range = history.range();
  if (latest === null || range === null) return null;
  const width = latest.end - latest.start;
  const from = range[0] * 1000;
  const columns = Math.max(1, Math.round((range[1] * 1000 - from) / width));
  const starts = Array.from({ length: columns }, (_, i) => from + i * width);
  const rows = new Map(emojis.map((emoji) => [emoji, new Array(columns).fill(0)]));
  let max = 0;
  for (const window of history.windows.values()) {
    const column = Math.round((window.start - from) / width);
    if (column < 0 || column >= columns) continue;
    for (const [emoji, n] of Object.entries(window.counts)) {
      const row = rows.get(emoji);
      if (row === undefined) continue;
      row[column] = n;
      max = Math.max(max, n);
    }
  }
  return { starts, width, rows, max };
}

/**
 * A count's colour: transparent for none, then opacity growing with the square root of its share
 * of `max`, which keeps both a quiet emoji's windows and a busy one's peaks apart.
 */
export function heat(count, max) {
  if (count <= 0 || max <= 0) return "transparent";
  const alpha = 0.1 + 0.9 * Math.sqrt(Math.min(1, count / max));
  return `rgba(${HUE.join(", ")}, ${alpha.toFixed(3)})`;
}

export class Heatmap {
  constructor(container, { spanLabel }) {
    this.grid = container.querySelector(".heatmap-grid");
    this.from = container.querySelector(".heatmap-from");
    this.to = container.querySelector(".heatmap-to");
    this.max = container.querySelector(".heatmap-max");
    this.scale = container.querySelector(".heatmap-scale");
    this.spanLabel = spanLabel;
    this.scale.style.backgroundImage = `linear-gradient(to right, ${heat(1, 1e9)}, ${heat(1, 1)})`;
  }

  update(history) {
    const emojis = history.emojis();
    const grid = heatmapGrid(history, emojis);
    if (grid === null) return;
    this.grid.style.gridTemplateColumns = `1.8rem repeat(${grid.starts.length}, minmax(0, 1fr))`;
    const cells = [];
    let busiest = null;
    for (const [emoji, counts] of grid.rows) {
      const label = document.createElement("span");
      label.className = "emoji heatmap-label";
      label.textContent = emoji;
      cells.push(label);
      counts.forEach((n, i) => {
        const cell = document.createElement("span");
        cell.className = "heatmap-cell";
        cell.dataset.emoji = emoji;
        cell.dataset.start = String(grid.starts[i]);
        cell.dataset.count = String(n);
        cell.title = `${emoji} ${clock(grid.starts[i] / 1000)}: ${n.toLocaleString()}`;
        const colour = heat(n, grid.max);
        if (colour !== "transparent") cell.style.backgroundImage = `linear-gradient(${colour}, ${colour})`;
        cells.push(cell);
        if (busiest === null || n > busiest.n) busiest = { emoji, n, start: grid.starts[i] };
      });
    }
    this.grid.replaceChildren(...cells);
    this.from.textContent = clock(grid.starts[0] / 1000);
    this.to.textContent = clock((grid.starts.at(-1) + grid.width) / 1000);
    this.max.textContent = grid.max.toLocaleString();
    const peak = busiest && busiest.n > 0
      ? `; busiest: ${busiest.emoji} ${busiest.n.toLocaleString()} at ${clock(busiest.start / 1000)}`
      : "";
    this.grid.setAttribute(
      "aria-label",
      `Reactions per emoji and window over the last ${this.spanLabel}${peak}`,
    );
  }
}
