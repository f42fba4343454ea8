// Long-running operations (create, pull, prune) as the page knows them: each followed by polling
// GET /operations/{id} until it ends, and updated by the stream's operation.* events; a
// progress bar's look for one.

import { ApiError, request } from "./api.js";
import { setText } from "./dom.js";
import { refused } from "./status.js";

const POLL_MS = 3000; // after a failed poll
const OPERATION_POLL_MS = 700;
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

const ops = new Map(); // id -> operation
const following = new Set(); // operation ids polled until they end
let onChange = () => {};
let onListed = () => {};

// onChange(op, endedNow): an operation changed; endedNow when it has just ended.
export function whenChanged(fn) {
  onChange = fn;
}

// onListed(): GET /operations was read.
export function whenListed(fn) {
  onListed = fn;
}

export function operation(id) {
  return ops.get(id);
}

// Whether an operation has ended (succeeded, failed or was cancelled).
export function ended(op) {
  return Boolean(op) && FINISHED.has(op.state);
}

// The id of the operation creating a VM, from the VM's `operation` link.
export function opId(vm) {
  return vm.operation ? vm.operation.split("/").pop() : null;
}

// An operation the page has just started (the answer to its POST).
export function remember(op) {
  ops.set(op.id, op);
}

export function updateOperation(op) {
  if (!op || !op.id) return;
  const before = ops.get(op.id);
  ops.set(op.id, op);
  onChange(op, ended(op) && !ended(before));
}

export async function loadOperations() {
  try {
    const list = await request("GET", "/operations");
    for (const op of list || []) {
      ops.set(op.id, op);
      if (!ended(op)) follow(op.id);
    }
    onListed();
  } catch (error) {
    // the list shows creates in progress anyway; their operations are followed from there
  }
}

export async function follow(id) {
  if (following.has(id)) return;
  following.add(id);
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
      if (ended(op)) return;
      await new Promise((resolve) => setTimeout(resolve, OPERATION_POLL_MS));
    }
  } finally {
    following.delete(id);
  }
}

export async function cancelOperation(id) {
  try {
    const op = await request("POST", `/operations/${encodeURIComponent(id)}/cancel`, { timeout: 30000 });
    updateOperation(op);
  } catch (error) {
    refused("The cancel was refused", error);
  }
}

export function showProgress(bar, percent, op) {
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
  } else if (ended(op)) {
    bar.value = 0;
    setText(percent, op.state);
  } else {
    bar.removeAttribute("value"); // indeterminate: Tart printed no percentage (a cached image)
    setText(percent, op.phase || op.state);
  }
}
