// The live viewer: one EventSource on this stream's SSE feed, floating emojis sized by each
// swarm, the window's running counts, the sentiment index and a small trend of recent windows.
// No framework and no build step; everything is drawn with plain DOM calls (never innerHTML,
// since the feed's text ends up on the page).
"use strict";

(() => {
  const streamId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
  const feedUrl = `/v1/streams/${encodeURIComponent(streamId)}/events`;
  const MAX_FLOATERS = 250;
  const TREND_WINDOWS = 60;

  const $ = (id) => document.getElementById(id);
  const stage = $("stage");
  const statusEl = $("status");
  const windows = new Map(); // window_start -> latest total of that window, for the trend
  let lastCounts = { window: null, counts: {} };
  let lastEventId = null;
  let source = null;
  let retryDelay = 1000;

  $("stream").textContent = streamId;
  document.title = `Emostream · ${streamId}`;

  function setStatus(state, text) {
    statusEl.className = `status ${state}`;
    statusEl.textContent = text;
  }

  function connect() {
    // EventSource resends Last-Event-ID itself while it reconnects; after it has given up
    // (an HTTP error such as 503) a new one starts where the last left off via the query.
    const url = lastEventId ? `${feedUrl}?last_event_id=${encodeURIComponent(lastEventId)}` : feedUrl;
    source = new EventSource(url);
    setStatus("connecting", "connecting");
    source.onopen = () => {
      retryDelay = 1000;
      setStatus("live", "live");
    };
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        setStatus("offline", `offline, retrying in ${Math.round(retryDelay / 1000)} s`);
        setTimeout(connect, retryDelay);
        retryDelay = Math.min(retryDelay * 2, 30000);
      } else {
        setStatus("connecting", "reconnecting");
      }
    };
    source.addEventListener("swarm", (event) => {
      if (event.lastEventId) lastEventId = event.lastEventId;
      let swarm;
      try {
        swarm = JSON.parse(event.data);
      } catch {
        return;
      }
      show(swarm);
    });
  }

  function show(swarm) {
    const counts = swarm.counts || {};
    const previous = lastCounts.window === swarm.window_start ? lastCounts.counts : {};
    for (const [emoji, size] of Object.entries(swarm.swarm || {})) {
      // Running totals repeat a window several times: float only what is new in this update.
      if ((counts[emoji] || 0) > (previous[emoji] || 0)) float(emoji, size);
    }
    lastCounts = { window: swarm.window_start, counts };
    showCounts(swarm, counts);
    showSentiment(swarm.sentiment);
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    windows.set(swarm.window_start, total);
    while (windows.size > TREND_WINDOWS) windows.delete(windows.keys().next().value);
    drawTrend();
  }

  function float(emoji, size) {
    const copies = Math.min(size, 8);
    for (let i = 0; i < copies && stage.childElementCount < MAX_FLOATERS; i++) {
      const el = document.createElement("span");
      el.className = "floater";
      el.textContent = emoji;
      el.style.left = `${5 + Math.random() * 85}%`;
      el.style.fontSize = `${1.5 + Math.min(Math.log2(size + 1), 5) * 0.6}rem`;
      el.style.setProperty("--drift", `${Math.round((Math.random() - 0.5) * 120)}px`);
      el.style.setProperty("--duration", `${2.5 + Math.random() * 2}s`);
      el.style.animationDelay = `${Math.random() * 0.8}s`;
      el.addEventListener("animationend", () => el.remove());
      stage.appendChild(el);
    }
  }

  function showCounts(swarm, counts) {
    const start = new Date(swarm.window_start).toLocaleTimeString();
    const end = new Date(swarm.window_end).toLocaleTimeString();
    $("window").textContent = `${start} – ${end}`;
    const body = $("counts").tBodies[0];
    body.replaceChildren();
    for (const [emoji, n] of Object.entries(counts).sort((a, b) => b[1] - a[1])) {
      const row = body.insertRow();
      row.insertCell().textContent = emoji;
      row.insertCell().textContent = n.toLocaleString();
      row.insertCell().textContent = `×${(swarm.swarm || {})[emoji] || 0}`;
    }
  }

  function showSentiment(value) {
    if (typeof value !== "number") return;
    $("sentiment-meter").value = value;
    $("sentiment").textContent = value.toFixed(2);
  }

  function drawTrend() {
    const canvas = $("trend");
    const ctx = canvas.getContext("2d");
    const values = [...windows.values()];
    const max = Math.max(1, ...values);
    const w = canvas.width / TREND_WINDOWS;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = "#4a8cd6";
    values.forEach((v, i) => {
      const h = (v / max) * (canvas.height - 2);
      ctx.fillRect(i * w, canvas.height - h, Math.max(w - 1, 1), h);
    });
  }

  connect();
})();
