// A VM's states over the last hour, from its vm.state events (and the states the page saw),
// drawn as an SVG strip of one rectangle per stretch of time.

import { clock, svg } from "./dom.js";

export const SPAN_MS = 60 * 60 * 1000;
const WIDTH = 120;
const HEIGHT = 14;
const STATES = new Set(["running", "stopped", "suspended", "creating"]);

// changes: [{time: ms, from: state|null, to: state}], any order.
// Returns [{start, end, state}] covering [now - span, now] where the state is known.
export function stretches(changes, now, current, span = SPAN_MS) {
  const start = now - span;
  const sorted = [...changes].filter((c) => Number.isFinite(c.time)).sort((a, b) => a.time - b.time);
  let state = null;
  const before = sorted.filter((c) => c.time <= start);
  if (before.length > 0) state = before[before.length - 1].to;
  const within = sorted.filter((c) => c.time > start && c.time <= now);
  if (state === null && within.length > 0) state = within[0].from || null;
  if (state === null && within.length === 0) state = current || null;
  const result = [];
  let from = start;
  for (const change of within) {
    if (state !== null && change.time > from) result.push({ start: from, end: change.time, state });
    state = change.to;
    from = change.time;
  }
  if (state === null) state = current || null;
  if (state !== null && now > from) result.push({ start: from, end: now, state });
  return result;
}

// A labelled <svg> for a table cell.
export function timeline(name, changes, now, current) {
  const parts = stretches(changes, now, current);
  const start = now - SPAN_MS;
  const summary = parts.length === 0
    ? "no state known in the last hour"
    : parts.map((p) => `${p.state} ${clock(p.start)}\u2013${clock(p.end)}`).join(", ");
  const image = svg("svg", {
    class: "timeline", viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: WIDTH, height: HEIGHT,
    role: "img", "aria-label": `States of ${name} over the last hour: ${summary}`,
  });
  image.append(svg("rect", { class: "tl-none", x: 0, y: 0, width: WIDTH, height: HEIGHT }));
  for (const part of parts) {
    const x = ((part.start - start) / SPAN_MS) * WIDTH;
    const width = Math.max(((part.end - part.start) / SPAN_MS) * WIDTH, 0.5);
    const kind = STATES.has(part.state) ? part.state : "none";
    const rect = svg("rect", {
      class: `tl-${kind}`, "data-state": part.state,
      x: x.toFixed(2), y: 0, width: width.toFixed(2), height: HEIGHT,
    });
    rect.append(svg("title", {}, `${part.state} ${clock(part.start)}\u2013${clock(part.end)}`));
    image.append(rect);
  }
  return image;
}
