// The VMs' table: one row per VM, made once and updated in place, with its actions.

import { vmPath } from "./api.js";
import { act, askDelete, startVm } from "./actions.js";
import { open as openDetails } from "./detail.js";
import { byId, el, gigabytes, megabytes, setText } from "./dom.js";
import { changesOf } from "./events.js";
import { cancelOperation, ended, opId, operation, showProgress } from "./operations.js";
import { isReadOnly } from "./session.js";
import { timeline } from "./timeline.js";
import { desiredText, detail, isBusy, names, vm } from "./vms.js";

const STATES = new Set(["running", "stopped", "suspended", "creating"]);

const rows = new Map(); // name -> {tr, cells, controls}
let rowCounter = 0;

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
    const listed = vm(name);
    if (listed && opId(listed)) cancelOperation(opId(listed));
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

export function updateRow(name) {
  const row = rows.get(name);
  const listed = vm(name);
  if (!row || !listed) return;
  const known = detail(name) || {};
  const { cells, controls } = row;
  const word = STATES.has(listed.state) ? listed.state : "unknown";
  setText(controls.stateWord, listed.state);
  controls.stateWord.className = `state state-${word}`;
  row.tr.className = `vm state-row-${word}`;
  const creating = listed.state === "creating";
  const op = creating ? operation(opId(listed)) : null;
  controls.bar.hidden = !creating;
  controls.percent.hidden = !creating;
  if (creating) showProgress(controls.bar, controls.percent, op);
  setText(cells.os, known.os);
  setText(cells.cpu, known.cpu);
  setText(cells.memory, megabytes(known.memory_mb));
  setText(cells.disk, gigabytes(listed.disk_gb ?? known.disk_gb));
  setText(cells.ip, known.ip);
  setText(cells.ready, known.ready === true ? "yes" : known.ready === false ? "no" : null);
  setText(cells.desired, desiredText(known));
  setText(cells.source, known.spec ? known.spec.source : null);
  controls.timeline.replaceChildren(timeline(name, changesOf(name), Date.now(), listed.state));
  const ro = isReadOnly();
  const busy = isBusy(name) || creating;
  const stopped = listed.state === "stopped" || listed.state === "suspended";
  const run = known.last_run;
  controls.start.disabled = ro || busy || !stopped;
  controls.suspendable.disabled = controls.start.disabled;
  controls.stop.disabled = ro || busy || !(listed.state === "running" || listed.state === "suspended");
  controls.suspend.disabled = ro || busy || listed.state !== "running"
    || !(run && run.suspendable && !run.exit_code_known);
  controls.remove.disabled = ro || busy;
  controls.cancel.hidden = !creating;
  controls.cancel.disabled = ro || !op || ended(op);
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

export function render() {
  const body = byId("vm-rows");
  const listed = names();
  listed.forEach((name, index) => {
    let row = rows.get(name);
    if (!row) {
      row = makeRow(name);
      rows.set(name, row);
    }
    updateRow(name);
    if (body.children[index] !== row.tr) body.insertBefore(row.tr, body.children[index] || null);
  });
  byId("no-vms").hidden = listed.length > 0;
}

export function renderTimelines() {
  for (const name of rows.keys()) updateRow(name);
}

// vms.js's change (see whenChanged there).
export function vmChanged(name, why) {
  if (why === "gone") {
    const row = rows.get(name);
    if (row) row.tr.remove();
    rows.delete(name);
    render();
  } else if (why === "listed") {
    render();
  } else {
    updateRow(name);
  }
}

export function operationChanged(op) {
  if (op.vm && vm(op.vm)) updateRow(op.vm);
}
