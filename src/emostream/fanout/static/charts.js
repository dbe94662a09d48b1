// The two uPlot charts: reactions per window (one line per emoji) and the sentiment wave.
// uPlot (vendored next to this file, see uPlot.LICENSE) draws on a canvas; the legend is plain
// DOM built here, so the numbers are readable as text and by screen readers.

const uPlot = globalThis.uPlot;

// Distinct in light and dark themes; emojis take them in order of first appearance.
const PALETTE = [
  "#e4572e", "#3b82d6", "#e8a317", "#2ca58d", "#a05195",
  "#d45087", "#6d9f3b", "#8c6d46", "#17becf", "#7f7f7f",
];

// Room on the right for the last time label, which centres on the chart's edge.
const PADDING = [8, 28, 0, 0];

function colourOf(index) {
  return PALETTE[index % PALETTE.length];
}

/** Clock time (24-hour, the viewer's locale) of a moment given in seconds. */
export function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hour12: false,
  });
}

/** Axis and grid colours following the page's (light or dark) text colour. */
function axes(container, yOptions) {
  const ink = getComputedStyle(container).color;
  const grid = { stroke: "rgba(128, 128, 128, 0.22)", width: 1 };
  const ticks = { stroke: "rgba(128, 128, 128, 0.4)", width: 1, size: 4 };
  return [
    { stroke: ink, grid, ticks, space: 90, values: (u, splits) => splits.map(clock) },
    { stroke: ink, grid, ticks, size: 48, ...yOptions },
  ];
}

/** Follows the container's width: uPlot sizes itself in pixels only. */
function fitWidth(container, chart) {
  const observer = new ResizeObserver(() => {
    const width = Math.floor(container.clientWidth);
    if (width > 0 && width !== chart.width) chart.setSize({ width, height: chart.height });
  });
  observer.observe(container);
  return observer;
}

export class TrendChart {
  constructor(container, legend, { height, spanLabel }) {
    this.container = container;
    this.legend = legend;
    this.height = height;
    this.spanLabel = spanLabel;
    this.chart = null;
    this.observer = null;
    this.emojis = [];
    this.range = null;
    this.build([], null, [[]]); // empty axes until the first swarm, like the sentiment chart
  }

  /** Redraws from `history`; a changed emoji set rebuilds the chart with new series. */
  update(history) {
    const emojis = history.emojis();
    this.range = history.range();
    const data = history.series(emojis);
    if (this.chart === null || emojis.join("\u0000") !== this.emojis.join("\u0000")) {
      this.build(emojis, history, [data.x, ...data.counts]);
    } else {
      this.chart.setData([data.x, ...data.counts]);
    }
    this.describe(emojis, history, data);
  }

  build(emojis, history, data) {
    this.observer?.disconnect();
    this.chart?.destroy();
    this.emojis = emojis;
    const series = [
      {},
      ...emojis.map((emoji) => ({
        label: emoji,
        stroke: colourOf(history.firstSeen.get(emoji)),
        width: 2,
        points: { show: false },
      })),
    ];
    const options = {
      width: Math.max(Math.floor(this.container.clientWidth), 200),
      height: this.height,
      padding: PADDING,
      legend: { show: false },
      cursor: { show: false },
      scales: {
        x: { time: true, range: (u, min, max) => this.range || [min, max] },
        y: { range: (u, min, max) => [0, Math.max(1, max) * 1.1] },
      },
      axes: axes(this.container, {}),
      series,
    };
    this.chart = new uPlot(options, data, this.container);
    this.observer = fitWidth(this.container, this.chart);
  }

  /** The legend (emoji, colour, latest and peak count) and the chart's text alternative. */
  describe(emojis, history, data) {
    const latest = history.latest();
    const items = emojis.map((emoji, i) => {
      const item = document.createElement("li");
      item.dataset.emoji = emoji;
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.backgroundColor = colourOf(history.firstSeen.get(emoji));
      swatch.setAttribute("aria-hidden", "true");
      const name = document.createElement("span");
      name.className = "emoji";
      name.textContent = emoji;
      const now = document.createElement("span");
      now.className = "latest";
      now.textContent = (latest?.counts[emoji] || 0).toLocaleString();
      const peak = document.createElement("span");
      peak.className = "peak";
      peak.textContent = `peak ${Math.max(0, ...data.counts[i]).toLocaleString()}`;
      item.append(swatch, name, now, peak);
      return item;
    });
    this.legend.replaceChildren(...items);
    this.container.dataset.windows = String(history.size);
    const summary = emojis.map((e) => `${e} ${latest?.counts[e] || 0}`).join(", ");
    this.container.setAttribute(
      "aria-label",
      `Reactions per window over the last ${this.spanLabel}` +
        (summary ? `; latest window: ${summary}` : "; no reactions yet"),
    );
  }
}

export class SentimentChart {
  constructor(container, { height }) {
    this.container = container;
    this.range = null;
    const options = {
      width: Math.max(Math.floor(container.clientWidth), 200),
      height,
      padding: PADDING,
      legend: { show: false },
      cursor: { show: false },
      scales: {
        x: { time: true, range: (u, min, max) => this.range || [min, max] },
        y: { range: [-1, 1] },
      },
      axes: axes(container, { splits: () => [-1, 0, 1] }),
      series: [
        {},
        {
          label: "sentiment",
          stroke: (u) => this.gradient(u, 1),
          fill: (u) => this.gradient(u, 0.3),
          fillTo: 0,
          width: 2,
          points: { show: false },
        },
      ],
    };
    this.chart = new uPlot(options, [[], []], container);
    fitWidth(container, this.chart);
  }

  /** Green above zero, red below: the colour itself says which way the crowd leans. */
  gradient(u, alpha) {
    const top = u.valToPos(1, "y", true);
    const bottom = u.valToPos(-1, "y", true);
    if (!Number.isFinite(top) || !Number.isFinite(bottom) || top === bottom) return "#888";
    const g = u.ctx.createLinearGradient(0, top, 0, bottom);
    g.addColorStop(0, `rgba(34, 160, 70, ${alpha})`);
    g.addColorStop(0.5, `rgba(140, 140, 140, ${alpha})`);
    g.addColorStop(1, `rgba(210, 50, 50, ${alpha})`);
    return g;
  }

  update(history) {
    this.range = history.range();
    const data = history.series([]);
    this.chart.setData([data.x, data.sentiment]);
    const latest = history.latest();
    const value = latest?.sentiment;
    this.container.setAttribute(
      "aria-label",
      "Sentiment index per window, from -1 to 1" +
        (Number.isFinite(value) ? `; latest ${value.toFixed(2)}` : ""),
    );
  }
}
