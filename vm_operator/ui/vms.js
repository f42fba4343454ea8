// The VMs as GET /vms lists them (local VMs only: images are apart, in the host panel), each
// one's GET /vms/{name}, and which have an action in flight. Others read them through the
// functions below and hear of each change through whenChanged.

import { ApiError, request, vmPath } from "./api.js";
import { debounce } from "./debounce.js";
import { loadHistory, observe } from "./events.js";
import { loadHost } from "./host.js";
import { follow, opId } from "./operations.js";
import { offers } from "./session.js";
import { setOperatorProblem, setTartProblem, unauthorized } from "./status.js";

const vms = new Map(); // name -> the VM as GET /vms lists it
const details = new Map(); // name -> GET /vms/{name}
const busy = new Set(); // names with an action in flight
// Answers can arrive out of order (a running VM's detail asks Tart for its IP and is slower
// than a stopped one's): each read and each piece of news of a VM is numbered, and an answer to
// a read sent before what the page shows of that VM is stale and dropped.
let count = 0;
const shown = new Map(); // name -> the number of what the page shows of it
let onChange = () => {};

// onChange(name, why): why is "row" (its listing or what is in flight changed), "detail" (its
// detail was read), "gone" (it is no longer listed), or "listed" (name null: the list was read).
export function whenChanged(fn) {
  onChange = fn;
}

export function vm(name) {
  return vms.get(name);
}

export function detail(name) {
  return details.get(name);
}

export function names() {
  return [...vms.keys()].sort();
}

export function isBusy(name) {
  return busy.has(name);
}

export function setBusy(name, on) {
  if (on) busy.add(name);
  else busy.delete(name);
  onChange(name, "row");
}

// What a VM's detail says of its desired state, or null when it says nothing of it.
export function desiredText(of) {
  const spec = of.spec;
  if (!spec && of.condition === undefined && of.restart_count === undefined) return null;
  const parts = [];
  if (spec && spec.desired) parts.push(spec.desired);
  if (spec && spec.restart) parts.push(`restart ${spec.restart}`);
  const condition = of.condition ?? (spec ? spec.condition : undefined);
  if (condition) parts.push(condition);
  const restarts = of.restart_count ?? (spec ? spec.restart_count : undefined);
  if (restarts) parts.push(`${restarts} restart${restarts === 1 ? "" : "s"}`);
  return parts.join(" · ") || null;
}

function ask() {
  count += 1;
  return count;
}

function news(name) {
  shown.set(name, ask());
}

// Whether the answer to read number `asked` is at least as new as what the page shows of name.
function current(name, asked) {
  return (shown.get(name) || 0) <= asked;
}

function seen(name, before, after) {
  if (observe(name, before, after)) debounce("host", 500, loadHost);
}

export async function refresh() {
  const asked = ask();
  let list;
  try {
    list = await request("GET", "/vms");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) unauthorized();
    else if (error instanceof ApiError && error.unreachable) setOperatorProblem(error.detail);
    else if (error instanceof ApiError) setTartProblem(error.detail);
    return;
  }
  setTartProblem(null);
  setOperatorProblem(null);
  const listed = new Set();
  for (const one of list) {
    if (one.source !== "local") continue;
    listed.add(one.name);
    if (!current(one.name, asked)) continue; // the page has heard newer of it meanwhile
    shown.set(one.name, asked);
    const before = vms.get(one.name);
    vms.set(one.name, one);
    seen(one.name, before ? before.state : null, one.state);
    if (one.state === "creating") {
      const id = opId(one);
      if (id) follow(id);
    } else if (!details.has(one.name) || !before || before.state !== one.state) {
      scheduleDetail(one.name);
    }
    const known = one.state !== "creating" && (!before || before.state === "creating");
    if (known && offers("/vms/{name}/events")) loadHistory(one.name); // Tart has it
  }
  for (const name of [...vms.keys()]) {
    if (!listed.has(name) && current(name, asked)) forget(name);
  }
  onChange(null, "listed");
}

export function scheduleDetail(name) {
  debounce(`detail:${name}`, 150, () => loadDetail(name));
}

async function loadDetail(name) {
  const listedAs = vms.get(name);
  if (!listedAs || listedAs.state === "creating") return;
  const asked = ask();
  try {
    const answer = await request("GET", vmPath(name));
    if (!vms.has(name)) return;
    if (!current(name, asked)) {
      scheduleDetail(name); // the page heard newer of it meanwhile: read it again
      return;
    }
    shown.set(name, asked);
    details.set(name, answer);
    if (answer.state && answer.state !== "creating") {
      const before = vms.get(name);
      vms.set(name, { ...before, state: answer.state, running: answer.running });
      seen(name, before.state, answer.state);
    }
    onChange(name, "detail");
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      debounce("vms", 100, refresh);
    }
  }
}

export function forget(name) {
  shown.delete(name);
  vms.delete(name);
  details.delete(name);
  onChange(name, "gone");
}

// The answer to a start, stop or suspend: the VM as it is now.
export function acted(name, answer) {
  if (answer && typeof answer === "object" && answer.name === name && vms.has(name)) {
    const before = vms.get(name);
    news(name);
    vms.set(name, { ...before, ...answer });
    seen(name, before.state, answer.state);
  }
}

// An operation on a VM ended: what it set (CPUs, memory, disk) is read afresh.
export function operationEnded(op) {
  if (op.vm) {
    details.delete(op.vm);
    scheduleDetail(op.vm);
  }
  debounce("vms", 100, refresh);
}

// An event of the stream about VMs.
export function heard(event) {
  const name = event.vm;
  const data = event.data || {};
  if (event.type === "vm.state" && name && vms.has(name)) {
    const before = vms.get(name);
    news(name);
    vms.set(name, { ...before, state: data.to, status: data.to, running: data.to === "running" });
    onChange(name, "row");
    scheduleDetail(name);
    debounce("host", 1000, loadHost);
  } else if (event.type === "vm.ready" && name && details.has(name)) {
    news(name);
    details.set(name, { ...details.get(name), ready: true, ip: data.ip });
    onChange(name, "row");
  } else if (event.type === "vm.created" || event.type === "vm.deleted") {
    debounce("vms", 200, refresh);
  } else if (event.type.startsWith("reconcile.") && name) {
    scheduleDetail(name);
  }
}
