// Into a VM's guest, in its details panel: the `vm-operator ssh` line to copy, and a box that runs
// one non-interactive command (POST /vms/{name}/exec) and shows its stdout, stderr and exit code.

import { ApiError, request, vmPath } from "./api.js";
import { byId, setText } from "./dom.js";
import { isReadOnly, offers } from "./session.js";

const DEFAULT_URL = "http://127.0.0.1:8082"; // the command line's default --url
const EXEC_TIMEOUT_S = 300; // the API's default timeout; the page waits a little longer
const SAFE_WORD = /^[A-Za-z0-9._\/:@%+=,-]+$/;

let shown = null; // the name of the VM shown
let running = false; // whether it runs, as the page last heard
let busy = false; // a command of this box is running
let round = 0; // a later command, or another VM, supersedes an earlier answer

// The words of a command line: a JSON array of strings (it starts with "["), or words split as a
// shell would without expanding anything: blanks separate, '…' keeps everything, "…" keeps all
// but \" and \\, a backslash outside quotes keeps the next character. Throws Error with a reason.
export function splitWords(text) {
  const line = text.trim();
  if (line.startsWith("[")) {
    let words;
    try {
      words = JSON.parse(line);
    } catch (error) {
      throw new Error("the command is not a JSON array");
    }
    if (!Array.isArray(words) || words.length === 0 || words.some((w) => typeof w !== "string")) {
      throw new Error("a JSON command is a non-empty array of strings");
    }
    return words;
  }
  const words = [];
  let word = null; // null: between words
  let quote = null;
  for (let at = 0; at < line.length; at += 1) {
    const c = line[at];
    if (quote === "'") {
      if (c === "'") quote = null;
      else word += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === "\\" && (line[at + 1] === '"' || line[at + 1] === "\\")) word += line[++at];
      else word += c;
    } else if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else if (c === "'" || c === '"') {
      quote = c;
      word = word ?? "";
    } else if (c === "\\") {
      if (at + 1 >= line.length) throw new Error("the command ends with a lone backslash");
      word = (word ?? "") + line[++at];
    } else {
      word = (word ?? "") + c;
    }
  }
  if (quote) throw new Error(`a ${quote === "'" ? "single" : "double"} quote is not closed`);
  if (word !== null) words.push(word);
  if (words.length === 0) throw new Error("type a command to run");
  return words;
}

// A word as a POSIX shell reads it back unchanged.
export function shellWord(word) {
  return SAFE_WORD.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

// The command line that opens an SSH session to the VM through the operator at `origin`.
export function sshLine(name, origin) {
  const url = origin === DEFAULT_URL ? "" : ` --url ${shellWord(origin)}`;
  return `vm-operator ssh${url} ${shellWord(name)}`;
}

// detail.js shows a VM (or none) and whether it runs: the box follows.
export function showGuest(name, state) {
  const box = byId("guest");
  box.hidden = !name || !offers("/vms/{name}/exec");
  if (name !== shown) {
    shown = name;
    round += 1;
    busy = false;
    clearOutput();
    setText(byId("exec-status"), null);
  }
  running = state === "running";
  if (!name) return;
  const line = sshLine(name, window.location.origin);
  const field = byId("ssh-line");
  if (field.value !== line) field.value = line;
  applyAccess();
}

function applyAccess() {
  byId("exec-run").disabled = busy || !running || isReadOnly();
  const note = byId("exec-note");
  const why = isReadOnly() ? "This token may not run commands (read-only)."
    : running ? null : "Start the VM to run a command in it.";
  note.hidden = why === null;
  if (why !== null) setText(note, why);
}

function clearOutput() {
  byId("exec-result").hidden = true;
  byId("exec-stdout").textContent = "";
  byId("exec-stderr").textContent = "";
  setText(byId("exec-exit"), null);
}

async function run(event) {
  event.preventDefault();
  const name = shown;
  // Not asked whether it runs: the disabled button keeps a stopped VM's box quiet, and a VM
  // stopped behind the page's back gets the operator's refusal, shown.
  if (!name || busy || isReadOnly()) return;
  const status = byId("exec-status");
  let command;
  try {
    command = splitWords(byId("exec-command").value);
  } catch (error) {
    setText(status, `Not run: ${error.message}.`);
    return;
  }
  round += 1;
  const mine = round;
  busy = true;
  applyAccess();
  clearOutput();
  setText(status, `Running ${command[0]}\u2026`);
  try {
    const answer = await request("POST", vmPath(name, "/exec"),
      { body: { command }, timeout: (EXEC_TIMEOUT_S + 15) * 1000 });
    if (mine !== round) return;
    byId("exec-stdout").textContent = answer.stdout;
    byId("exec-stderr").textContent = answer.stderr;
    setText(byId("exec-exit"), answer.exit_code);
    byId("exec-truncated").hidden = !answer.truncated;
    byId("exec-result").hidden = false;
    setText(status, `${command[0]} ended with exit code ${answer.exit_code}.`);
  } catch (error) {
    if (mine !== round) return;
    setText(status, `Refused: ${error instanceof ApiError ? error.detail : String(error)}`);
  } finally {
    if (mine === round) {
      busy = false;
      applyAccess();
    }
  }
}

export function wireGuest() {
  byId("exec-form").addEventListener("submit", run);
  const field = byId("ssh-line");
  field.addEventListener("focus", () => field.select());
}
