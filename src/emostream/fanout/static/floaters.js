// Floating emojis: each update of a window releases emojis that rise across the stage, bigger
// for a bigger swarm. Only what is new floats: running totals repeat a window several times,
// so an update releases as many emojis as its swarm grew (at least one when its count grew).
// A backlog (the replay after a reconnect) arrives all at once; a budget of emojis per second
// keeps it from covering the stage, and the DOM never holds more than MAX_FLOATERS.

const MAX_FLOATERS = 250;
const MAX_COPIES = 6;
const BUDGET_PER_S = 25;
const BUDGET_BURST = 40;

export class Floaters {
  constructor(stage) {
    this.stage = stage;
    this.budget = BUDGET_BURST;
    this.refilled = performance.now();
  }

  /** Takes up to `wanted` emojis from the budget; returns how many may float now. */
  take(wanted) {
    const now = performance.now();
    this.budget = Math.min(BUDGET_BURST, this.budget + ((now - this.refilled) / 1000) * BUDGET_PER_S);
    this.refilled = now;
    const granted = Math.min(wanted, Math.floor(this.budget));
    this.budget -= granted;
    return granted;
  }

  /** Floats what `window` adds to `previous` (an earlier message of the same window, or none). */
  release(window, previous) {
    // Hidden tabs pause animations, so their floaters would pile up until the tab is shown.
    if (document.hidden) return;
    for (const [emoji, size] of Object.entries(window.swarm)) {
      const before = previous ? previous.counts[emoji] || 0 : 0;
      if ((window.counts[emoji] || 0) <= before) continue;
      const grown = size - (previous ? previous.swarm[emoji] || 0 : 0);
      this.burst(emoji, size, Math.min(Math.max(grown, 1), MAX_COPIES));
    }
  }

  burst(emoji, size, copies) {
    const scale = Math.min(Math.log2(size + 1), 5); // 1 -> 1, 3 -> 2, 31+ -> 5
    const granted = this.take(copies);
    for (let i = 0; i < granted && this.stage.childElementCount < MAX_FLOATERS; i++) {
      const el = document.createElement("span");
      el.className = "floater";
      el.textContent = emoji;
      el.setAttribute("aria-hidden", "true");
      // Anywhere across the stage, the emoji's own width (about 1.2em) kept inside it.
      const across = Math.random();
      el.style.left = `calc(${(across * 100).toFixed(2)}% - ${(across * 1.2).toFixed(2)}em)`;
      el.style.fontSize = `${1.4 + scale * 0.7}rem`;
      el.style.setProperty("--drift", `${Math.round((Math.random() - 0.5) * 120)}px`);
      el.style.setProperty("--y", `${Math.round(10 + Math.random() * 70)}%`); // reduced motion
      el.style.setProperty("--duration", `${2.8 + Math.random() * 2}s`);
      el.style.animationDelay = `${Math.random() * 0.6}s`;
      el.addEventListener("animationend", () => el.remove());
      this.stage.appendChild(el);
    }
  }
}
