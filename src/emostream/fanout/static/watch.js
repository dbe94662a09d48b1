// The live viewer page of one stream: floating emojis sized by each swarm, the current window's
// counts, a trend chart per emoji, a heatmap of emoji by window, the sentiment wave, the viewer
// count and the connection state. Plain modules, no build step here: the feed is the SDK's
// bundle, built in clients/js and committed. Feed text only ever reaches the page through
// textContent and attributes, never innerHTML.

import { SentimentChart, TrendChart, clock } from "./charts.js";
import { follow } from "./feed.js";
import { Floaters } from "./floaters.js";
import { Heatmap } from "./heatmap.js";
import { WindowHistory } from "./windows.js";

const SPAN_MINUTES = 5;

const $ = (id) => document.getElementById(id);
const streamId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const recent = new WindowHistory(SPAN_MINUTES * 60 * 1000);
const floaters = new Floaters($("stage"));
const trend = new TrendChart($("trend-chart"), $("trend-legend"), {
  height: 170,
  spanLabel: `${SPAN_MINUTES} minutes`,
});
const heatmap = new Heatmap($("heatmap"), { spanLabel: `${SPAN_MINUTES} minutes` });
const wave = new SentimentChart($("sentiment-chart"), { height: 130 });
let drawPending = false;

$("stream").textContent = streamId;
document.title = `Emostream · ${streamId}`;

const STATES = {
  connecting: () => "connecting…",
  live: () => "live",
  reconnecting: () => "reconnecting…",
  offline: (waitMs) => `offline, retrying in ${Math.max(1, Math.round(waitMs / 1000))} s`,
  ended: () => "feed ended",
};

function showState(state, detail) {
  const el = $("status");
  el.dataset.state = state;
  el.textContent = STATES[state](detail);
}

function onSwarm(message) {
  if (Number.isInteger(message.viewers) && message.viewers >= 0) showViewers(message.viewers);
  const news = recent.record(message);
  if (news === null) return;
  $("stage-hint").hidden = true;
  floaters.release(news.window, news.previous);
  const latest = recent.latest();
  if (latest !== null && latest.start === news.window.start) showWindow(latest);
  // Bursts of updates draw once per frame; a hidden tab draws when it is shown again.
  if (!drawPending) {
    drawPending = true;
    requestAnimationFrame(draw);
  }
}

function draw() {
  drawPending = false;
  trend.update(recent);
  heatmap.update(recent);
  wave.update(recent);
}

function showViewers(n) {
  const el = $("viewers");
  el.dataset.value = String(n);
  el.textContent = n.toLocaleString();
  $("viewers-label").textContent = n === 1 ? "viewer" : "viewers";
}

function showWindow(shown) {
  $("window").textContent = `${clock(shown.start / 1000)} – ${clock(shown.end / 1000)}`;
  const rows = Object.entries(shown.counts)
    .sort((a, b) => b[1] - a[1])
    .map(([emoji, n]) => {
      const row = document.createElement("tr");
      const name = document.createElement("th");
      name.scope = "row";
      name.textContent = emoji;
      row.append(name, cell(n.toLocaleString()), cell(`×${shown.swarm[emoji] || 0}`));
      return row;
    });
  $("counts").tBodies[0].replaceChildren(...rows);
  if (shown.sentiment !== null) {
    $("sentiment-meter").value = shown.sentiment;
    $("sentiment-meter").hidden = false;
    $("sentiment").textContent = shown.sentiment.toFixed(2);
  }
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

follow(streamId, { onSwarm, onState: showState });
