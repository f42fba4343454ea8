// The dashboard: the VMs, their actions, creates with progress, a VM's log and events, the host.
// Live through GET /events; every value from the API is inserted as text (dom.js).

import { ApiError, clearToken, getToken, request, setToken, vmPath } from "./api.js";
import {
  byId, bytes, clock, dateTime, el, gigabytes, megabytes, setText, show,
} from "./dom.js";
import { EventStream } from "./stream.js";
import { timeline } from "./timeline.js";

const POLL_MS = 3000; // the VM list, when there is no event stream
const SAFETY_MS = 30000; // the VM list, with the stream: in case an event was missed
const HEALTH_MS = 10000;
const OPERATION_POLL_MS = 700;
const LOG_POLL_MS = 2000;
const LOG_LINES = 200;
const EVENTS_KEPT = 200;
const STATES = new Set(["running", "stopped", "suspended", "creating"]);
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

const state = {
  routes: new Set(), // the paths /openapi.json lists: what this operator can do
  vms: new Map(), // name -> the VM as GET /vms lists it (local VMs only; images are apart)
  details: new Map(), // name -> GET /vms/{name}
  rows: new Map(), // name -> {tr, cells, controls}
  events: new Map(), // name -> [Event JSON], oldest first
  eventIds: new Map(), // name -> Set of event ids seen
  changes: new Map(), // name -> [{time, from, to}] for the timeline
  ops: new Map(), // id -> operation
  following: new Set(), // operation ids polled until they end
  busy: new Set(), // names with an action in flight
  images: [],
  readOnly: false,
  streaming: false,
  stream: null,
  selected: null,
  createOp: null,
  pruneOp: null,
  logTimer: null,
  logRound: 0,
  timers: new Map(),
  operatorProblem: null,
  tartProblem: null,
  started: false,
};

let rowCounter = 0;

// --- small helpers --------------------------------------------------------------------------

function debounce(key, ms, fn) {
  clearTimeout(state.timers.get(key));
  state.timers.set(key, setTimeout(() => {
    state.timers.delete(key);
    fn();
  }, ms));
}

function opId(vm) {
  return vm.operation ? vm.operation.split("/").pop() : null;
}

function notice(text) {
  setText(byId("notice-text"), text);
  byId("notice").hidden = false;
}

function refused(what, error, show = notice) {
  if (error instanceof ApiError && error.status === 401) {
    showLogin("The operator refused the token: enter it again.");
    return;
  }
  if (error instanceof ApiError && error.unreachable) {
    state.operatorProblem = error.detail;
    renderBanner();
  }
  show(`${what}: ${error instanceof ApiError ? error.detail : String(error)}`);
}

function renderBanner() {
  const banner = byId("banner");
  const parts = [];
  if (state.operatorProblem) parts.push(`The operator is unreachable: ${state.operatorProblem}.`);
  if (state.tartProblem) parts.push(`Tart is unreachable: ${state.tartProblem}.`);
  setText(banner, parts.join(" ") || null);
  banner.hidden = parts.length === 0;
}

function setLive(word, kind) {
  const live = byId("live");
  setText(live, word);
  live.className = `live live-${kind}`;
}

// --- signing in -----------------------------------------------------------------------------

function showLogin(message) {
  if (state.stream) state.stream.stop();
  state.stream = null;
  byId("main").hidden = true;
  byId("login").hidden = false;
  const error = byId("login-error");
  setText(error, message || null);
  error.hidden = !message;
  setLive("signed out", "down");
  byId("token-input").focus();
}

async function signIn(event) {
  event.preventDefault();
  const input = byId("token-input");
  const token = input.value.trim();
  if (!token) return;
  setToken(token);
  input.value = "";
  await start();
}

// With the read token a write answers 403 before its body is looked at; with the full token
// this empty prune is refused as a body without criteria (400): nothing is ever pruned.
async function probeReadOnly() {
  if (!getToken()) return false;
  try {
    await request("POST", "/images/prune", { body: {} });
  } catch (error) {
    return error instanceof ApiError && error.status === 403;
  }
  return false;
}

// --- loading --------------------------------------------------------------------------------

async function start() {
  try {
    const doc = await request("GET", "/openapi.json");
    state.routes = new Set(Object.keys((doc && doc.paths) || {}));
    state.operatorProblem = null;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      showLogin(getToken() ? "That token is not valid." : null);
      if (getToken()) clearToken();
      return;
    }
    state.operatorProblem = error.detail || String(error);
    renderBanner();
    setTimeout(start, POLL_MS);
    return;
  }
  renderBanner();
  state.readOnly = await probeReadOnly();
  byId("login").hidden = true;
  byId("main").hidden = false;
  byId("forget-token").hidden = !getToken();
  byId("readonly").hidden = !state.readOnly;
  byId("create-fields").disabled = state.readOnly;
  byId("prune-submit").disabled = state.readOnly;
  byId("prune-days").disabled = state.readOnly;
  await refreshVms();
  loadOperations();
  loadHost();
  loadImages();
  if (!state.started) {
    state.started = true;
    setInterval(() => {
      if (!state.streaming) refreshVms();
    }, POLL_MS);
    setInterval(() => {
      if (state.streaming) refreshVms();
      loadHost();
    }, SAFETY_MS);
    setInterval(renderTimelines, 60000);
  }
  startStream();
}

async function refreshVms() {
  let list;
  try {
    list = await request("GET", "/vms");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      showLogin("The operator refused the token: enter it again.");
    } else if (error instanceof ApiError && error.unreachable) {
      state.operatorProblem = error.detail;
    } else if (error instanceof ApiError) {
      state.tartProblem = error.detail;
    }
    renderBanner();
    return;
  }
  state.tartProblem = null;
  state.operatorProblem = null;
  renderBanner();
  const seen = new Set();
  for (const vm of list) {
    if (vm.source !== "local") continue;
    seen.add(vm.name);
    const before = state.vms.get(vm.name);
    state.vms.set(vm.name, vm);
    observe(vm.name, before ? before.state : null, vm.state);
    if (vm.state === "creating") {
      const id = opId(vm);
      if (id) follow(id);
    } else if (!state.details.has(vm.name) || !before || before.state !== vm.state) {
      scheduleDetail(vm.name);
    }
    const known = vm.state !== "creating" && (!before || before.state === "creating");
    if (known && state.routes.has("/vms/{name}/events")) loadHistory(vm.name); // Tart has it
  }
  for (const name of [...state.vms.keys()]) {
    if (!seen.has(name)) forget(name);
  }
  renderTable();
  renderSources();
}

function scheduleDetail(name) {
  debounce(`detail:${name}`, 150, () => loadDetail(name));
}

async function loadDetail(name) {
  const vm = state.vms.get(name);
  if (!vm || vm.state === "creating") return;
  try {
    const detail = await request("GET", vmPath(name));
    if (!state.vms.has(name)) return;
    state.details.set(name, detail);
    if (detail.state && detail.state !== "creating") {
      const before = state.vms.get(name);
      state.vms.set(name, { ...before, state: detail.state, running: detail.running });
      observe(name, before.state, detail.state);
    }
    updateRow(name);
    if (state.selected === name) {
      renderDetails();
      followLog(); // the detail says whether it runs, and whether there is a run log
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      debounce("vms", 100, refreshVms);
    }
  }
}

async function loadHistory(name) {
  try {
    const answer = await request("GET", vmPath(name, "/events"));
    for (const event of (answer && answer.events) || []) record(event);
    updateRow(name);
    if (state.selected === name) renderEvents();
  } catch (error) {
    // an unknown VM (it went meanwhile): nothing to show
  }
}

async function loadOperations() {
  try {
    const ops = await request("GET", "/operations");
    for (const op of ops || []) {
      state.ops.set(op.id, op);
      if (!FINISHED.has(op.state)) follow(op.id);
    }
    renderTable();
  } catch (error) {
    // the list shows creates in progress anyway; their operations are followed from there
  }
}

async function loadHost() {
  let host;
  try {
    host = await request("GET", "/host");
  } catch (error) {
    return;
  }
  const fields = byId("host-fields");
  const guests = host.macos_guests || {};
  const disk = host.disk || {};
  const ops = host.operations || {};
  fields.replaceChildren();
  const rows = [
    ["Tart version", host.tart ? host.tart.version : null],
    ["Tart home", host.tart_home],
    ["macOS guests running",
      guests.running === undefined ? null
        : `${guests.running} of ${guests.limit === null ? "no limit" : guests.limit}`],
    ["Disk free (Tart home)",
      disk.free_bytes === undefined ? null : `${bytes(disk.free_bytes)} of ${bytes(disk.total_bytes)}`],
    ["Operations", ops.running === undefined ? null : `${ops.running} running, ${ops.queued} queued`],
  ];
  for (const [term, value] of rows) {
    fields.append(el("dt", {}, term), el("dd", {}, show(value)));
  }
}

async function loadImages() {
  try {
    state.images = (await request("GET", "/images")) || [];
  } catch (error) {
    return;
  }
  const body = byId("image-rows");
  body.replaceChildren();
  for (const image of state.images) {
    body.append(el("tr", {},
      el("td", { "data-label": "Reference", class: "ref" }, image.ref),
      el("td", { "data-label": "Kind" }, show(image.kind)),
      el("td", { "data-label": "Size" }, gigabytes(image.size_gb)),
      el("td", { "data-label": "Disk of a clone" }, gigabytes(image.disk_gb)),
      el("td", { "data-label": "Last used" }, dateTime(image.accessed))));
  }
  setText(byId("images-total"), state.images.length === 0 ? "The cache is empty."
    : "An image is listed once by each of its tags and once by its digest.");
  renderSources();
}

async function checkHealth() {
  try {
    const health = await request("GET", "/health", { timeout: 5000 });
    state.operatorProblem = null;
    if (health && health.tart && health.tart.available === false) {
      state.tartProblem = health.message; // cleared by the next list Tart answers
    }
  } catch (error) {
    state.operatorProblem = error instanceof ApiError ? error.detail : String(error);
  }
  renderBanner();
}

// --- the event stream -----------------------------------------------------------------------

function startStream() {
  if (state.stream || !state.routes.has("/events")) {
    if (!state.routes.has("/events")) setLive(`polling every ${POLL_MS / 1000} s`, "polling");
    return;
  }
  state.stream = new EventStream({
    onEvent: onEvent,
    onReset: () => {
      refreshVms();
      loadOperations();
      loadImages();
      loadHost();
    },
    onStatus: (status) => {
      const was = state.streaming;
      state.streaming = status === "live";
      if (status === "live") {
        setLive("live", "live");
        if (!was) refreshVms();
      } else if (status === "unauthorized") {
        showLogin("The operator refused the token: enter it again.");
      } else {
        setLive("reconnecting…", "down");
      }
    },
  });
  state.stream.start();
}

function onEvent(event) {
  if (!event || typeof event.type !== "string") return;
  const name = event.vm;
  const data = event.data || {};
  if (name) record(event);
  if (event.type === "vm.state" && name && state.vms.has(name)) {
    const vm = state.vms.get(name);
    state.vms.set(name, { ...vm, state: data.to, status: data.to, running: data.to === "running" });
    updateRow(name);
    scheduleDetail(name);
    debounce("host", 1000, loadHost);
  } else if (event.type === "vm.ready" && name && state.details.has(name)) {
    state.details.set(name, { ...state.details.get(name), ready: true, ip: data.ip });
    updateRow(name);
  } else if (event.type === "vm.created" || event.type === "vm.deleted") {
    debounce("vms", 200, refreshVms);
  } else if (event.type.startsWith("operation.")) {
    updateOperation(data);
  } else if (event.type.startsWith("reconcile.") && name) {
    scheduleDetail(name);
  } else if (event.type === "config.refused") {
    notice(`The configuration file was refused: ${show(data.error)}`);
  }
  if (name && state.selected === name) {
    renderEvents();
    if (event.type === "vm.state") followLog();
  }
}

function record(event) {
  const name = event.vm;
  if (!name) return;
  let ids = state.eventIds.get(name);
  if (!ids) {
    ids = new Set();
    state.eventIds.set(name, ids);
  }
  if (event.id !== undefined && ids.has(event.id)) return;
  ids.add(event.id);
  const list = state.events.get(name) || [];
  list.push(event);
  list.sort((a, b) => (a.id || 0) - (b.id || 0));
  while (list.length > EVENTS_KEPT) list.shift();
  state.events.set(name, list);
  if (event.type === "vm.state" && event.data) {
    addChange(name, { time: Date.parse(event.time), from: event.data.from, to: event.data.to });
  }
}

// A state the page saw change (from the list or an answer): the timeline has it even when no
// event says so.
function observe(name, before, after) {
  if (!after || before === after) return;
  addChange(name, { time: Date.now(), from: before, to: after });
  if (before) debounce("host", 500, loadHost); // macOS guests running may have changed
}

function addChange(name, change) {
  if (!Number.isFinite(change.time)) return;
  const list = state.changes.get(name) || [];
  const last = list.length ? list[list.length - 1] : null;
  if (last && last.to === change.to && Math.abs(last.time - change.time) < 5000) return;
  list.push(change);
  list.sort((a, b) => a.time - b.time);
  state.changes.set(name, list);
}

// --- operations -----------------------------------------------------------------------------

function updateOperation(op) {
  if (!op || !op.id) return;
  const before = state.ops.get(op.id);
  state.ops.set(op.id, op);
  if (op.vm && state.vms.has(op.vm)) updateRow(op.vm);
  if (op.id === state.createOp) renderCreate();
  if (op.id === state.pruneOp) renderPrune();
  if (FINISHED.has(op.state) && !(before && FINISHED.has(before.state))) {
    if (op.vm) {
      state.details.delete(op.vm); // what the operation set (CPUs, memory, disk) is read afresh
      scheduleDetail(op.vm);
    }
    debounce("vms", 100, refreshVms);
    debounce("host", 500, loadHost);
    if (op.kind === "prune" || op.kind === "pull" || op.kind === "create") {
      debounce("images", 500, loadImages);
    }
  }
}

async function follow(id) {
  if (state.following.has(id)) return;
  state.following.add(id);
  try {
    for (;;) {
      let op;
      try {
        op = await request("GET", `/operations/${encodeURIComponent(id)}`);
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) return;
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
        continue;
      }
      updateOperation(op);
      if (FINISHED.has(op.state)) return;
      await new Promise((resolve) => setTimeout(resolve, OPERATION_POLL_MS));
    }
  } finally {
    state.following.delete(id);
  }
}

function showProgress(bar, percent, op) {
  if (!op) {
    bar.removeAttribute("value");
    setText(percent, null);
    return;
  }
  if (op.state === "succeeded") {
    bar.value = 100;
    setText(percent, "100 %");
  } else if (op.progress !== null && op.progress !== undefined) {
    bar.value = op.progress;
    setText(percent, `${op.progress} %`);
  } else if (FINISHED.has(op.state)) {
    bar.value = 0;
    setText(percent, op.state);
  } else {
    bar.removeAttribute("value"); // indeterminate: Tart printed no percentage (a cached image)
    setText(percent, op.phase || op.state);
  }
}

// --- the VM table ---------------------------------------------------------------------------

function makeRow(name) {
  rowCounter += 1;
  const id = `vm-${rowCounter}`;
  const tr = el("tr", { "data-vm": name });
  const nameButton = el("button", {
    type: "button", class: "link vm-name", "aria-label": `Details of ${name}`,
  }, name);
  nameButton.addEventListener("click", () => openDetails(name));
  const cells = {};
  const cell = (key, label, ...children) => {
    cells[key] = el("td", { "data-label": label, class: `col-${key}` }, ...children);
    return cells[key];
  };
  const stateWord = el("span", { class: "state" });
  const bar = el("progress", { max: 100, class: "row-bar", "aria-label": `Creating ${name}` });
  const percent = el("span", { class: "percent" });
  const controls = {
    stateWord, bar, percent,
    start: el("button", { type: "button", class: "act-start", "aria-label": `Start ${name}` }, "Start"),
    suspendable: el("input", { type: "checkbox", id: `${id}-suspendable`, class: "act-suspendable" }),
    stop: el("button", { type: "button", class: "act-stop", "aria-label": `Stop ${name}` }, "Stop"),
    suspend: el("button", { type: "button", class: "act-suspend", "aria-label": `Suspend ${name}` },
      "Suspend"),
    remove: el("button", { type: "button", class: "act-delete danger", "aria-label": `Delete ${name}` },
      "Delete"),
    cancel: el("button", { type: "button", class: "act-cancel", "aria-label": `Cancel the creation of ${name}` },
      "Cancel"),
    timeline: el("span", { class: "timeline-box" }),
  };
  const suspendableLabel = el("label", { for: `${id}-suspendable`, class: "check-label" },
    controls.suspendable, "suspendable");
  controls.suspendableLabel = suspendableLabel;
  controls.start.addEventListener("click", () => startVm(name, controls.suspendable.checked));
  controls.stop.addEventListener("click", () => act(name, "Stop", "POST", vmPath(name, "/stop")));
  controls.suspend.addEventListener("click", () => act(name, "Suspend", "POST", vmPath(name, "/suspend")));
  controls.remove.addEventListener("click", () => askDelete(name));
  controls.cancel.addEventListener("click", () => {
    const vm = state.vms.get(name);
    if (vm && opId(vm)) cancelOperation(opId(vm));
  });
  tr.append(
    cell("name", "Name", nameButton),
    cell("os", "OS"),
    cell("state", "State", stateWord, bar, percent),
    cell("cpu", "CPU"),
    cell("memory", "Memory"),
    cell("disk", "Disk"),
    cell("ip", "IP"),
    cell("ready", "Ready"),
    cell("desired", "Desired"),
    cell("source", "Source"),
    cell("timeline", "Last hour", controls.timeline),
    cell("actions", "Actions", el("span", { class: "actions" }, controls.start, suspendableLabel,
      controls.stop, controls.suspend, controls.remove, controls.cancel)),
  );
  return { tr, cells, controls };
}

function desiredText(detail) {
  const spec = detail.spec;
  if (!spec && detail.condition === undefined && detail.restart_count === undefined) return null;
  const parts = [];
  if (spec && spec.desired) parts.push(spec.desired);
  if (spec && spec.restart) parts.push(`restart ${spec.restart}`);
  const condition = detail.condition ?? (spec ? spec.condition : undefined);
  if (condition) parts.push(condition);
  const restarts = detail.restart_count ?? (spec ? spec.restart_count : undefined);
  if (restarts) parts.push(`${restarts} restart${restarts === 1 ? "" : "s"}`);
  return parts.join(" · ") || null;
}

function updateRow(name) {
  const row = state.rows.get(name);
  const vm = state.vms.get(name);
  if (!row || !vm) return;
  const detail = state.details.get(name) || {};
  const { cells, controls } = row;
  const word = STATES.has(vm.state) ? vm.state : "unknown";
  setText(controls.stateWord, vm.state);
  controls.stateWord.className = `state state-${word}`;
  row.tr.className = `vm state-row-${word}`;
  const creating = vm.state === "creating";
  const op = creating ? state.ops.get(opId(vm)) : null;
  controls.bar.hidden = !creating;
  controls.percent.hidden = !creating;
  if (creating) showProgress(controls.bar, controls.percent, op);
  setText(cells.os, detail.os);
  setText(cells.cpu, detail.cpu);
  setText(cells.memory, megabytes(detail.memory_mb));
  setText(cells.disk, gigabytes(vm.disk_gb ?? detail.disk_gb));
  setText(cells.ip, detail.ip);
  setText(cells.ready, detail.ready === true ? "yes" : detail.ready === false ? "no" : null);
  setText(cells.desired, desiredText(detail));
  setText(cells.source, detail.spec ? detail.spec.source : null);
  controls.timeline.replaceChildren(timeline(name, state.changes.get(name) || [], Date.now(), vm.state));
  const ro = state.readOnly;
  const busy = state.busy.has(name) || creating;
  const stopped = vm.state === "stopped" || vm.state === "suspended";
  const run = detail.last_run;
  controls.start.disabled = ro || busy || !stopped;
  controls.suspendable.disabled = controls.start.disabled;
  controls.stop.disabled = ro || busy || !(vm.state === "running" || vm.state === "suspended");
  controls.suspend.disabled = ro || busy || vm.state !== "running"
    || !(run && run.suspendable && !run.exit_code_known);
  controls.remove.disabled = ro || busy;
  controls.cancel.hidden = !creating;
  controls.cancel.disabled = ro || !op || FINISHED.has(op.state);
  controls.start.hidden = creating;
  controls.suspendableLabel.hidden = creating;
  controls.stop.hidden = creating;
  controls.suspend.hidden = creating;
  controls.remove.hidden = creating;
  for (const button of [controls.start, controls.stop, controls.suspend, controls.remove]) {
    if (ro) button.title = "The read-only token may not change VMs";
    else button.removeAttribute("title");
  }
}

function renderTable() {
  const body = byId("vm-rows");
  const names = [...state.vms.keys()].sort();
  names.forEach((name, index) => {
    let row = state.rows.get(name);
    if (!row) {
      row = makeRow(name);
      state.rows.set(name, row);
    }
    updateRow(name);
    if (body.children[index] !== row.tr) body.insertBefore(row.tr, body.children[index] || null);
  });
  byId("no-vms").hidden = names.length > 0;
}

function renderTimelines() {
  for (const name of state.rows.keys()) updateRow(name);
}

function renderSources() {
  const list = byId("sources");
  list.replaceChildren();
  const seen = new Set();
  for (const image of state.images) {
    if (image.kind === "tag" && !seen.has(image.ref)) {
      seen.add(image.ref);
      list.append(el("option", { value: image.ref }));
    }
  }
  for (const name of [...state.vms.keys()].sort()) {
    if (!seen.has(name) && state.vms.get(name).state !== "creating") {
      seen.add(name);
      list.append(el("option", { value: name }));
    }
  }
}

function forget(name) {
  const row = state.rows.get(name);
  if (row) row.tr.remove();
  state.rows.delete(name);
  state.vms.delete(name);
  state.details.delete(name);
  if (state.selected === name) closeDetails();
}

// --- actions --------------------------------------------------------------------------------

async function act(name, label, method, path) {
  state.busy.add(name);
  updateRow(name);
  try {
    const vm = await request(method, path);
    if (vm && typeof vm === "object" && vm.name === name && state.vms.has(name)) {
      const before = state.vms.get(name);
      state.vms.set(name, { ...before, ...vm });
      observe(name, before.state, vm.state);
    }
  } catch (error) {
    refused(`${label} ${name} was refused`, error);
  } finally {
    state.busy.delete(name);
    updateRow(name);
    scheduleDetail(name);
    debounce("host", 500, loadHost);
    if (state.selected === name) followLog();
  }
}

function startVm(name, suspendable) {
  const query = suspendable ? "?suspendable=true" : "";
  return act(name, "Start", "POST", vmPath(name, `/start${query}`));
}

let deleting = null;

function askDelete(name) {
  const vm = state.vms.get(name);
  if (!vm) return;
  deleting = name;
  const dialog = byId("confirm-delete");
  setText(byId("confirm-title"), `Delete ${name}?`);
  const text = [`The VM \u201c${name}\u201d and its disk are removed; this cannot be undone.`];
  if (vm.state === "running" || vm.state === "suspended") {
    text.push(`It is ${vm.state}: it is stopped first.`);
  }
  setText(byId("confirm-text"), text.join(" "));
  byId("confirm-yes").setAttribute("aria-label", `Delete ${name}`);
  dialog.showModal();
  byId("confirm-keep").focus();
}

async function confirmDelete() {
  const name = deleting;
  deleting = null;
  byId("confirm-delete").close();
  const vm = state.vms.get(name);
  if (!vm) return;
  const force = vm.state === "running" || vm.state === "suspended";
  state.busy.add(name);
  updateRow(name);
  try {
    await request("DELETE", vmPath(name, force ? "?force=true" : ""), { timeout: 120000 });
    forget(name);
    renderTable();
    notice(`Deleted ${name}.`);
  } catch (error) {
    refused(`Deleting ${name} was refused`, error);
  } finally {
    state.busy.delete(name);
    updateRow(name);
    debounce("host", 500, loadHost);
    renderSources();
  }
}

async function cancelOperation(id) {
  try {
    const op = await request("POST", `/operations/${encodeURIComponent(id)}/cancel`, { timeout: 30000 });
    updateOperation(op);
  } catch (error) {
    refused("The cancel was refused", error);
  }
}

// --- the create form ------------------------------------------------------------------------

function numberField(id) {
  const value = byId(id).value.trim();
  return value === "" ? undefined : Number(value);
}

async function submitCreate(event) {
  event.preventDefault();
  if (state.readOnly) return;
  const name = byId("create-name").value.trim();
  const from = byId("create-from").value.trim();
  if (!name || !from) {
    createRefused("A VM needs a name and something to clone it from.");
    (name ? byId("create-from") : byId("create-name")).focus();
    return;
  }
  const body = { name, from, start: byId("create-start").checked };
  const fields = [["cpu", "create-cpu"], ["memory_mb", "create-memory"], ["disk_gb", "create-disk"]];
  for (const [key, id] of fields) {
    const value = numberField(id);
    if (value !== undefined) body[key] = value;
  }
  const restart = byId("create-restart").value;
  if (restart) body.restart = restart;
  byId("create-submit").disabled = true;
  createRefused(null);
  try {
    const op = await request("POST", "/vms", { body });
    state.createOp = op.id;
    state.ops.set(op.id, op);
    byId("create-progress").hidden = false;
    renderCreate();
    follow(op.id);
    debounce("vms", 50, refreshVms);
  } catch (error) {
    refused(`Creating ${name} was refused`, error, createRefused);
  } finally {
    byId("create-submit").disabled = false;
  }
}

// A refused create is told in the create panel, where the user is looking (the notice at the
// top of the page may be scrolled away); the outcome of an earlier create that has ended is
// no longer the news and goes (one still running stays, with its Cancel). null clears it.
function createRefused(text) {
  const shown = byId("create-refusal");
  shown.textContent = text || "";
  shown.hidden = !text;
  if (!text) return;
  const earlier = state.ops.get(state.createOp);
  if (!earlier || FINISHED.has(earlier.state)) {
    state.createOp = null;
    byId("create-progress").hidden = true;
  }
}

function renderCreate() {
  const op = state.ops.get(state.createOp);
  if (!op) return;
  const bar = byId("create-bar");
  showProgress(bar, byId("create-percent"), op);
  const what = op.vm || "the VM";
  const phase = op.phase ? ` (${op.phase})` : "";
  const labels = {
    queued: `Creating ${what}: queued`,
    running: `Creating ${what}${phase}`,
    succeeded: `Created ${what}`,
    failed: `Creating ${what} failed`,
    cancelled: `Creating ${what} was cancelled`,
  };
  setText(byId("create-label"), labels[op.state] || `Creating ${what}`);
  const result = byId("create-result");
  if (op.state === "failed") {
    setText(result, op.error ? op.error.detail || op.error.title : "failed");
  } else if (op.state === "succeeded") {
    setText(result, op.result || `${what} is ready to use.`);
  } else {
    setText(result, null);
  }
  result.className = op.state === "failed" ? "error" : "";
  byId("create-cancel").disabled = state.readOnly || FINISHED.has(op.state);
}

// --- prune ----------------------------------------------------------------------------------

async function submitPrune(event) {
  event.preventDefault();
  if (state.readOnly) return;
  const days = numberField("prune-days");
  if (days === undefined || !Number.isInteger(days) || days < 0) {
    notice("Prune needs a whole number of days.");
    return;
  }
  byId("prune-submit").disabled = true;
  try {
    const op = await request("POST", "/images/prune", { body: { older_than_days: days } });
    state.pruneOp = op.id;
    state.ops.set(op.id, op);
    renderPrune();
    follow(op.id);
  } catch (error) {
    refused("Prune was refused", error);
    byId("prune-submit").disabled = state.readOnly;
  }
}

function renderPrune() {
  const op = state.ops.get(state.pruneOp);
  if (!op) return;
  const result = byId("prune-result");
  if (op.state === "succeeded") setText(result, op.result || "Pruned.");
  else if (op.state === "failed") setText(result, `Prune failed: ${op.error ? op.error.detail : ""}`);
  else if (op.state === "cancelled") setText(result, "Prune was cancelled.");
  else setText(result, `Pruning (${op.state})…`);
  byId("prune-submit").disabled = state.readOnly || !FINISHED.has(op.state);
}

// --- the details panel: fields, run log, events ---------------------------------------------

function openDetails(name) {
  state.selected = name;
  const panel = byId("details");
  panel.hidden = false;
  setText(byId("details-title"), name);
  byId("log").replaceChildren();
  setText(byId("log-status"), null);
  renderDetails();
  renderEvents();
  scheduleDetail(name);
  if (state.routes.has("/vms/{name}/events")) loadHistory(name);
  followLog();
  byId("details-title").focus();
  panel.scrollIntoView({ block: "nearest" });
}

function closeDetails() {
  state.selected = null;
  state.logRound += 1;
  clearTimeout(state.logTimer);
  state.logTimer = null;
  byId("details").hidden = true;
}

function renderDetails() {
  const name = state.selected;
  if (!name) return;
  const vm = state.vms.get(name) || {};
  const detail = state.details.get(name) || {};
  const run = detail.last_run;
  const fields = [
    ["State", vm.state],
    ["OS", detail.os],
    ["CPU", detail.cpu],
    ["Memory", detail.memory_mb === undefined ? null : megabytes(detail.memory_mb)],
    ["Disk", vm.disk_gb === undefined ? null : gigabytes(vm.disk_gb)],
    ["Display", detail.display],
    ["IP", detail.ip],
    ["Ready", detail.ready === true ? "yes" : detail.ready === false ? "no" : null],
    ["Desired", desiredText(detail)],
    ["Spec from", detail.spec ? detail.spec.source : null],
    ["Next attempt", detail.next_attempt_at ? dateTime(detail.next_attempt_at) : null],
    ["Last run started", run ? dateTime(run.started_at) : null],
    ["Last run ended", run && run.finished_at ? dateTime(run.finished_at) : null],
    ["Exit code", run && run.exit_code_known ? run.exit_code : null],
    ["Run error", run ? run.error : null],
  ];
  const list = byId("details-fields");
  list.replaceChildren();
  for (const [term, value] of fields) list.append(el("dt", {}, term), el("dd", {}, show(value)));
}

function describeEvent(event) {
  const data = event.data || {};
  switch (event.type) {
    case "vm.state": {
      const exit = data.exit_code === null || data.exit_code === undefined ? "" : `, exit ${data.exit_code}`;
      return `${show(data.from)} \u2192 ${show(data.to)} (${show(data.cause)}${exit})`;
    }
    case "vm.ready":
      return `ready at ${show(data.ip)}:${show(data.port)}`;
    case "vm.created":
      return "created";
    case "vm.deleted":
      return `deleted (${show(data.cause)})`;
    case "operation.queued":
    case "operation.started":
    case "operation.progress":
    case "operation.succeeded":
    case "operation.failed":
    case "operation.cancelled": {
      const progress = data.progress === null || data.progress === undefined ? "" : ` ${data.progress} %`;
      return `${show(data.kind)} ${show(data.state)}${data.phase ? ` \u00b7 ${data.phase}` : ""}${progress}`;
    }
    case "reconcile.action":
    case "reconcile.failed":
    case "reconcile.waiting":
    case "config.applied":
    case "config.refused":
    default:
      break;
  }
  const parts = [];
  for (const key of ["action", "reason", "condition", "error", "restart_count", "next_attempt_at"]) {
    if (data[key] !== undefined && data[key] !== null) parts.push(`${key}: ${data[key]}`);
  }
  return parts.join(", ");
}

function renderEvents() {
  const list = byId("vm-events");
  list.replaceChildren();
  const events = state.events.get(state.selected) || [];
  if (events.length === 0) {
    const why = state.routes.has("/vms/{name}/events") ? "No events in the operator's history."
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
  clearTimeout(state.logTimer);
  state.logTimer = null;
  state.logRound += 1;
  const round = state.logRound; // a later call supersedes this one
  const name = state.selected;
  if (!name) return;
  const vm = state.vms.get(name);
  const detail = state.details.get(name);
  const status = byId("log-status");
  if (!detail) {
    state.logTimer = setTimeout(followLog, 500); // the detail says whether there is a run
    return;
  }
  if (!detail.last_run) {
    setText(status, "No run log: the operator has not started this VM.");
    byId("log").replaceChildren();
    return;
  }
  const running = vm && vm.state === "running";
  try {
    const text = await request("GET", vmPath(name, `/logs?tail=${LOG_LINES}`));
    if (round !== state.logRound) return;
    const log = byId("log");
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    if (log.textContent !== text) {
      log.textContent = text;
      if (atEnd) log.scrollTop = log.scrollHeight;
    }
    setText(status, running ? `Following the last ${LOG_LINES} lines while it runs.`
      : `The last ${LOG_LINES} lines of its last run.`);
  } catch (error) {
    if (round !== state.logRound) return;
    setText(status, error instanceof ApiError ? error.detail : String(error));
  }
  if (running) state.logTimer = setTimeout(followLog, LOG_POLL_MS);
}

// --- wiring ---------------------------------------------------------------------------------

function wire() {
  byId("login-form").addEventListener("submit", signIn);
  byId("forget-token").addEventListener("click", () => {
    clearToken();
    window.location.reload();
  });
  byId("notice-close").addEventListener("click", () => {
    byId("notice").hidden = true;
  });
  byId("details-close").addEventListener("click", closeDetails);
  byId("details-title").setAttribute("tabindex", "-1");
  byId("create-form").addEventListener("submit", submitCreate);
  byId("create-cancel").addEventListener("click", () => {
    if (state.createOp) cancelOperation(state.createOp);
  });
  byId("prune-form").addEventListener("submit", submitPrune);
  byId("confirm-keep").addEventListener("click", () => {
    deleting = null;
    byId("confirm-delete").close();
  });
  byId("confirm-yes").addEventListener("click", confirmDelete);
  byId("confirm-delete").addEventListener("cancel", () => {
    deleting = null;
  });
}

wire();
checkHealth();
setInterval(checkHealth, HEALTH_MS);
start();
