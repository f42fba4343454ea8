// A VM's details panel (click its name): its fields, the way into its guest (guest.js), the tail
// of its run log (followed while it runs) and its recent events.

import { ApiError, request, vmPath } from "./api.js";
import { byId, clock, dateTime, el, gigabytes, megabytes, setText, show } from "./dom.js";
import { describeEvent, eventsOf, loadHistory } from "./events.js";
import { showGuest, wireGuest } from "./guest.js";
import { offers } from "./session.js";
import { desiredText, detail, scheduleDetail, vm } from "./vms.js";

const LOG_POLL_MS = 2000;
const LOG_LINES = 200;

let selected = null; // the name of the VM shown, or null
let logTimer = null;
let logRound = 0; // a later read of the log supersedes an earlier one

export function open(name) {
  selected = name;
  const panel = byId("details");
  panel.hidden = false;
  setText(byId("details-title"), name);
  byId("log").replaceChildren();
  setText(byId("log-status"), null);
  render();
  renderEvents();
  scheduleDetail(name);
  if (offers("/vms/{name}/events")) loadHistory(name);
  followLog();
  byId("details-title").focus();
  panel.scrollIntoView({ block: "nearest" });
}

function close() {
  selected = null;
  logRound += 1;
  clearTimeout(logTimer);
  logTimer = null;
  byId("details").hidden = true;
  showGuest(null, null);
}

function render() {
  const name = selected;
  if (!name) return;
  const listed = vm(name) || {};
  const known = detail(name) || {};
  const run = known.last_run;
  showGuest(name, listed.state);
  const fields = [
    ["State", listed.state],
    ["OS", known.os],
    ["CPU", known.cpu],
    ["Memory", known.memory_mb === undefined ? null : megabytes(known.memory_mb)],
    ["Disk", listed.disk_gb === undefined ? null : gigabytes(listed.disk_gb)],
    ["Display", known.display],
    ["IP", known.ip],
    ["Ready", known.ready === true ? "yes" : known.ready === false ? "no" : null],
    ["Desired", desiredText(known)],
    ["Spec from", known.spec ? known.spec.source : null],
    ["Next attempt", known.next_attempt_at ? dateTime(known.next_attempt_at) : null],
    ["Last run started", run ? dateTime(run.started_at) : null],
    ["Last run ended", run && run.finished_at ? dateTime(run.finished_at) : null],
    ["Exit code", run && run.exit_code_known ? run.exit_code : null],
    ["Run error", run ? run.error : null],
  ];
  const list = byId("details-fields");
  list.replaceChildren();
  for (const [term, value] of fields) list.append(el("dt", {}, term), el("dd", {}, show(value)));
}

function renderEvents() {
  const list = byId("vm-events");
  list.replaceChildren();
  const events = eventsOf(selected);
  if (events.length === 0) {
    const why = offers("/vms/{name}/events") ? "No events in the operator's history."
      : "This operator keeps no event history.";
    list.append(el("li", { class: "muted" }, why));
    return;
  }
  for (const event of events.slice(-50).reverse()) {
    list.append(el("li", {},
      el("time", { datetime: event.time }, clock(event.time)), " ",
      el("span", { class: "event-type" }, event.type), " ",
      el("span", { class: "event-text" }, describeEvent(event))));
  }
}

async function followLog() {
  clearTimeout(logTimer);
  logTimer = null;
  logRound += 1;
  const round = logRound;
  const name = selected;
  if (!name) return;
  const listed = vm(name);
  const known = detail(name);
  const status = byId("log-status");
  if (!known) {
    logTimer = setTimeout(followLog, 500); // the detail says whether there is a run
    return;
  }
  if (!known.last_run) {
    setText(status, "No run log: the operator has not started this VM.");
    byId("log").replaceChildren();
    return;
  }
  const running = listed && listed.state === "running";
  try {
    const text = await request("GET", vmPath(name, `/logs?tail=${LOG_LINES}`));
    if (round !== logRound) return;
    const log = byId("log");
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    if (log.textContent !== text) {
      log.textContent = text;
      if (atEnd) log.scrollTop = log.scrollHeight;
    }
    setText(status, running ? `Following the last ${LOG_LINES} lines while it runs.`
      : `The last ${LOG_LINES} lines of its last run.`);
  } catch (error) {
    if (round !== logRound) return;
    setText(status, error instanceof ApiError ? error.detail : String(error));
  }
  if (running) logTimer = setTimeout(followLog, LOG_POLL_MS);
}

// The log of the VM shown is read again (an action on it ended).
export function refollow(name) {
  if (name === selected) followLog();
}

// vms.js's change (see whenChanged there): a fresh detail is shown; a VM gone closes the panel.
export function vmChanged(name, why) {
  if (name === null || name !== selected) return;
  if (why === "detail") {
    render();
    followLog(); // the detail says whether it runs, and whether there is a run log
  } else if (why === "gone") {
    close();
  } else {
    render(); // its listing changed: its state, so whether a command can run
  }
}

// An event of the stream: the VM shown lists it.
export function heard(event) {
  if (!event.vm || event.vm !== selected) return;
  renderEvents();
  if (event.type === "vm.state") followLog();
}

// The history of a VM was read.
export function historyLoaded(name) {
  if (name === selected) renderEvents();
}

export function wireDetail() {
  byId("details-close").addEventListener("click", close);
  byId("details-title").setAttribute("tabindex", "-1");
  wireGuest();
}
