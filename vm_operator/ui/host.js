// The host panel: Tart's version and home, macOS guests running, free disk, operations; the
// image cache, and Prune.

import { request } from "./api.js";
import { debounce } from "./debounce.js";
import { byId, bytes, dateTime, el, gigabytes, numberField, setText, show } from "./dom.js";
import { ended, follow, operation, remember } from "./operations.js";
import { isReadOnly } from "./session.js";
import { notice, refused } from "./status.js";

let images = []; // GET /images
let pruneOp = null; // the id of the prune this page started
let onImages = () => {};

// What to do when the image cache has been read (the create form offers its tags).
export function whenImagesLoaded(fn) {
  onImages = fn;
}

// The references of the cached images' tags, in the order listed (a tag may repeat).
export function imageTags() {
  return images.filter((image) => image.kind === "tag").map((image) => image.ref);
}

export function applyAccess() {
  byId("prune-submit").disabled = isReadOnly();
  byId("prune-days").disabled = isReadOnly();
}

export async function loadHost() {
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

export async function loadImages() {
  try {
    images = (await request("GET", "/images")) || [];
  } catch (error) {
    return;
  }
  const body = byId("image-rows");
  body.replaceChildren();
  for (const image of images) {
    body.append(el("tr", {},
      el("td", { "data-label": "Reference", class: "ref" }, image.ref),
      el("td", { "data-label": "Kind" }, show(image.kind)),
      el("td", { "data-label": "Size" }, gigabytes(image.size_gb)),
      el("td", { "data-label": "Disk of a clone" }, gigabytes(image.disk_gb)),
      el("td", { "data-label": "Last used" }, dateTime(image.accessed))));
  }
  setText(byId("images-total"), images.length === 0 ? "The cache is empty."
    : "An image is listed once by each of its tags and once by its digest.");
  onImages();
}

// An operation changed: the prune's result; what an ended operation changed on the host.
export function operationChanged(op, endedNow) {
  if (op.id === pruneOp) renderPrune();
  if (!endedNow) return;
  debounce("host", 500, loadHost);
  if (op.kind === "prune" || op.kind === "pull" || op.kind === "create") {
    debounce("images", 500, loadImages);
  }
}

async function submitPrune(event) {
  event.preventDefault();
  if (isReadOnly()) return;
  const days = numberField("prune-days");
  if (days === undefined || !Number.isInteger(days) || days < 0) {
    notice("Prune needs a whole number of days.");
    return;
  }
  byId("prune-submit").disabled = true;
  try {
    const op = await request("POST", "/images/prune", { body: { older_than_days: days } });
    pruneOp = op.id;
    remember(op);
    renderPrune();
    follow(op.id);
  } catch (error) {
    refused("Prune was refused", error);
    byId("prune-submit").disabled = isReadOnly();
  }
}

function renderPrune() {
  const op = operation(pruneOp);
  if (!op) return;
  const result = byId("prune-result");
  if (op.state === "succeeded") setText(result, op.result || "Pruned.");
  else if (op.state === "failed") setText(result, `Prune failed: ${op.error ? op.error.detail : ""}`);
  else if (op.state === "cancelled") setText(result, "Prune was cancelled.");
  else setText(result, `Pruning (${op.state})…`);
  byId("prune-submit").disabled = isReadOnly() || !ended(op);
}

export function wireHost() {
  byId("prune-form").addEventListener("submit", submitPrune);
}
