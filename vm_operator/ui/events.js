// Each VM's events (from GET /vms/{name}/events and the stream; oldest first, the last 200) and
// the changes of state its timeline draws; describeEvent is the one line the page shows for an
// event.

import { request, vmPath } from "./api.js";
import { show } from "./dom.js";

const EVENTS_KEPT = 200;

const events = new Map(); // name -> [Event JSON], oldest first
const eventIds = new Map(); // name -> Set of event ids seen
const changes = new Map(); // name -> [{time, from, to}] for the timeline
let onHistory = () => {};

// What to do when a VM's history has been read (its timeline and events list are redrawn).
export function whenHistoryLoaded(fn) {
  onHistory = fn;
}

export function eventsOf(name) {
  return [...(events.get(name) || [])];
}

export function changesOf(name) {
  return [...(changes.get(name) || [])];
}

export async function loadHistory(name) {
  try {
    const answer = await request("GET", vmPath(name, "/events"));
    for (const event of (answer && answer.events) || []) record(event);
    onHistory(name);
  } catch (error) {
    // an unknown VM (it went meanwhile): nothing to show
  }
}

export function record(event) {
  const name = event.vm;
  if (!name) return;
  let ids = eventIds.get(name);
  if (!ids) {
    ids = new Set();
    eventIds.set(name, ids);
  }
  if (event.id !== undefined && ids.has(event.id)) return;
  ids.add(event.id);
  const list = events.get(name) || [];
  list.push(event);
  list.sort((a, b) => (a.id || 0) - (b.id || 0));
  while (list.length > EVENTS_KEPT) list.shift();
  events.set(name, list);
  if (event.type === "vm.state" && event.data) {
    addChange(name, { time: Date.parse(event.time), from: event.data.from, to: event.data.to });
  }
}

// A state the page saw change (from the list or an answer): the timeline has it even when no
// event says so. True when a known state became another (the macOS guests running may have
// changed).
export function observe(name, before, after) {
  if (!after || before === after) return false;
  addChange(name, { time: Date.now(), from: before, to: after });
  return Boolean(before);
}

function addChange(name, change) {
  if (!Number.isFinite(change.time)) return;
  const list = changes.get(name) || [];
  const last = list.length ? list[list.length - 1] : null;
  if (last && last.to === change.to && Math.abs(last.time - change.time) < 5000) return;
  list.push(change);
  list.sort((a, b) => a.time - b.time);
  changes.set(name, list);
}

export function describeEvent(event) {
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
    case "vm.exec":
      return `exec ${show(data.command)} from ${show(data.client)}: ${show(data.outcome)}, exit ${show(data.exit_code)}, ${show(data.duration_ms)} ms`;
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
