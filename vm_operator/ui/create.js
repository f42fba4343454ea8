// The create form: POST /vms, then its operation's progress to the end, with Cancel; a refusal
// is said beside the form. And the form's list of what to clone from (image tags, local VMs).

import { request } from "./api.js";
import { debounce } from "./debounce.js";
import { byId, el, numberField, setText } from "./dom.js";
import { imageTags } from "./host.js";
import { cancelOperation, ended, follow, operation, remember, showProgress } from "./operations.js";
import { isReadOnly } from "./session.js";
import { refused } from "./status.js";
import { names, refresh, vm } from "./vms.js";

let createOp = null; // the id of the create this page started last

export function applyAccess() {
  byId("create-fields").disabled = isReadOnly();
}

async function submitCreate(event) {
  event.preventDefault();
  if (isReadOnly()) return;
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
    createOp = op.id;
    remember(op);
    byId("create-progress").hidden = false;
    renderCreate();
    follow(op.id);
    debounce("vms", 50, refresh);
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
  const earlier = operation(createOp);
  if (!earlier || ended(earlier)) {
    createOp = null;
    byId("create-progress").hidden = true;
  }
}

function renderCreate() {
  const op = operation(createOp);
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
  byId("create-cancel").disabled = isReadOnly() || ended(op);
}

export function operationChanged(op) {
  if (op.id === createOp) renderCreate();
}

// The form's suggestions: the cached images' tags, then the local VMs not being created.
export function renderSources() {
  const list = byId("sources");
  list.replaceChildren();
  const seen = new Set();
  for (const ref of imageTags()) {
    if (!seen.has(ref)) {
      seen.add(ref);
      list.append(el("option", { value: ref }));
    }
  }
  for (const name of names()) {
    if (!seen.has(name) && vm(name).state !== "creating") {
      seen.add(name);
      list.append(el("option", { value: name }));
    }
  }
}

export function wireCreate() {
  byId("create-form").addEventListener("submit", submitCreate);
  byId("create-cancel").addEventListener("click", () => {
    if (createOp) cancelOperation(createOp);
  });
}
