// What a row's buttons do: start, stop and suspend a VM, and delete it after a confirmation.

import { request, vmPath } from "./api.js";
import { debounce } from "./debounce.js";
import { refollow } from "./detail.js";
import { byId, setText } from "./dom.js";
import { loadHost } from "./host.js";
import { notice, refused } from "./status.js";
import { acted, forget, scheduleDetail, setBusy, vm } from "./vms.js";

let deleting = null; // the name the confirmation asks about

export async function act(name, label, method, path) {
  setBusy(name, true);
  try {
    acted(name, await request(method, path));
  } catch (error) {
    refused(`${label} ${name} was refused`, error);
  } finally {
    setBusy(name, false);
    scheduleDetail(name);
    debounce("host", 500, loadHost);
    refollow(name);
  }
}

export function startVm(name, suspendable) {
  const query = suspendable ? "?suspendable=true" : "";
  return act(name, "Start", "POST", vmPath(name, `/start${query}`));
}

export function askDelete(name) {
  const listed = vm(name);
  if (!listed) return;
  deleting = name;
  const dialog = byId("confirm-delete");
  setText(byId("confirm-title"), `Delete ${name}?`);
  const text = [`The VM \u201c${name}\u201d and its disk are removed; this cannot be undone.`];
  if (listed.state === "running" || listed.state === "suspended") {
    text.push(`It is ${listed.state}: it is stopped first.`);
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
  const listed = vm(name);
  if (!listed) return;
  const force = listed.state === "running" || listed.state === "suspended";
  setBusy(name, true);
  try {
    await request("DELETE", vmPath(name, force ? "?force=true" : ""), { timeout: 120000 });
    forget(name);
    notice(`Deleted ${name}.`);
  } catch (error) {
    refused(`Deleting ${name} was refused`, error);
  } finally {
    setBusy(name, false);
    debounce("host", 500, loadHost);
  }
}

export function wireActions() {
  byId("confirm-keep").addEventListener("click", () => {
    deleting = null;
    byId("confirm-delete").close();
  });
  byId("confirm-yes").addEventListener("click", confirmDelete);
  byId("confirm-delete").addEventListener("cancel", () => {
    deleting = null;
  });
}
