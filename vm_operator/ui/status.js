// What the page says about itself: a notice at the top, the banner while the operator or Tart
// is unreachable, the word in the header (live, reconnecting, polling), and refusals (the
// problem's detail).

import { ApiError } from "./api.js";
import { byId, setText } from "./dom.js";

let operatorProblem = null; // why the operator cannot be reached, or null
let tartProblem = null; // why Tart cannot be run, or null
let onUnauthorized = () => {};

// What to do when the operator refuses the token (app.js: ask for it again).
export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

export function unauthorized() {
  onUnauthorized();
}

export function notice(text) {
  setText(byId("notice-text"), text);
  byId("notice").hidden = false;
}

export function setOperatorProblem(problem) {
  operatorProblem = problem;
  renderBanner();
}

export function setTartProblem(problem) {
  tartProblem = problem;
  renderBanner();
}

function renderBanner() {
  const banner = byId("banner");
  const parts = [];
  if (operatorProblem) parts.push(`The operator is unreachable: ${operatorProblem}.`);
  if (tartProblem) parts.push(`Tart is unreachable: ${tartProblem}.`);
  setText(banner, parts.join(" ") || null);
  banner.hidden = parts.length === 0;
}

// Says why `what` was refused, with `say` (the notice unless told); a refused token asks for
// it again instead.
export function refused(what, error, say = notice) {
  if (error instanceof ApiError && error.status === 401) {
    unauthorized();
    return;
  }
  if (error instanceof ApiError && error.unreachable) setOperatorProblem(error.detail);
  say(`${what}: ${error instanceof ApiError ? error.detail : String(error)}`);
}

export function setLive(word, kind) {
  const live = byId("live");
  setText(live, word);
  live.className = `live live-${kind}`;
}
