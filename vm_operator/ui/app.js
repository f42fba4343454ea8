// The dashboard: the VMs, their actions, creates with progress, a VM's log and events, the host.
// Live through GET /events; every value from the API is inserted as text (dom.js). This module
// signs in, loads, reads the stream and wires the panels together; each panel is a module that
// keeps its own state (table.js, detail.js, create.js, host.js, over vms.js, operations.js and
// events.js) and others reach it only through the functions it exports.

import { ApiError, clearToken, getToken, request, setToken } from "./api.js";
import { wireActions } from "./actions.js";
import * as create from "./create.js";
import * as detail from "./detail.js";
import { byId, setText, show } from "./dom.js";
import { record, whenHistoryLoaded } from "./events.js";
import * as host from "./host.js";
import * as operations from "./operations.js";
import { isReadOnly, offers, setReadOnly, setRoutes } from "./session.js";
import { notice, setLive, setOperatorProblem, setTartProblem, whenUnauthorized } from "./status.js";
import { EventStream } from "./stream.js";
import * as table from "./table.js";
import * as vms from "./vms.js";

const POLL_MS = 3000; // the VM list, when there is no event stream
const SAFETY_MS = 30000; // the VM list, with the stream: in case an event was missed
const HEALTH_MS = 10000;

let stream = null;
let streaming = false;
let started = false;

// --- signing in -----------------------------------------------------------------------------

function showLogin(message) {
  if (stream) stream.stop();
  stream = null;
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

// A token without the role "write" (the read token) is refused a write (403) before its body
// is looked at; with it this empty pull is refused as a body without a ref (400): nothing is
// ever pulled.
async function probeReadOnly() {
  if (!getToken()) return false;
  try {
    await request("POST", "/images", { body: {} });
  } catch (error) {
    return error instanceof ApiError && error.status === 403;
  }
  return false;
}

// --- loading --------------------------------------------------------------------------------

async function start() {
  try {
    const doc = await request("GET", "/openapi.json");
    setRoutes(Object.keys((doc && doc.paths) || {}));
    setOperatorProblem(null);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      showLogin(getToken() ? "That token is not valid." : null);
      if (getToken()) clearToken();
      return;
    }
    setOperatorProblem(error.detail || String(error));
    setTimeout(start, POLL_MS);
    return;
  }
  setReadOnly(await probeReadOnly());
  byId("login").hidden = true;
  byId("main").hidden = false;
  byId("forget-token").hidden = !getToken();
  byId("readonly").hidden = !isReadOnly();
  create.applyAccess();
  host.applyAccess();
  await vms.refresh();
  operations.loadOperations();
  host.loadHost();
  host.loadImages();
  if (!started) {
    started = true;
    setInterval(() => {
      if (!streaming) vms.refresh();
    }, POLL_MS);
    setInterval(() => {
      if (streaming) vms.refresh();
      host.loadHost();
    }, SAFETY_MS);
    setInterval(table.renderTimelines, 60000);
  }
  startStream();
}

async function checkHealth() {
  try {
    const health = await request("GET", "/health", { timeout: 5000 });
    setOperatorProblem(null);
    if (health && health.tart && health.tart.available === false) {
      setTartProblem(health.message); // cleared by the next list Tart answers
    }
  } catch (error) {
    setOperatorProblem(error instanceof ApiError ? error.detail : String(error));
  }
}

// --- the event stream -----------------------------------------------------------------------

function startStream() {
  if (stream || !offers("/events")) {
    if (!offers("/events")) setLive(`polling every ${POLL_MS / 1000} s`, "polling");
    return;
  }
  stream = new EventStream({
    onEvent,
    onReset: () => {
      vms.refresh();
      operations.loadOperations();
      host.loadImages();
      host.loadHost();
    },
    onStatus: (status) => {
      const was = streaming;
      streaming = status === "live";
      if (status === "live") {
        setLive("live", "live");
        if (!was) vms.refresh();
      } else if (status === "unauthorized") {
        showLogin("The operator refused the token: enter it again.");
      } else {
        setLive("reconnecting…", "down");
      }
    },
  });
  stream.start();
}

function onEvent(event) {
  if (!event || typeof event.type !== "string") return;
  if (event.vm) record(event);
  vms.heard(event);
  if (event.type.startsWith("operation.")) {
    operations.updateOperation(event.data || {});
  } else if (event.type === "config.refused") {
    notice(`The configuration file was refused: ${show((event.data || {}).error)}`);
  }
  detail.heard(event);
}

// --- wiring ---------------------------------------------------------------------------------

function wire() {
  whenUnauthorized(() => showLogin("The operator refused the token: enter it again."));
  vms.whenChanged((name, why) => {
    table.vmChanged(name, why);
    detail.vmChanged(name, why);
    if (why === "listed" || why === "gone") create.renderSources();
  });
  operations.whenChanged((op, endedNow) => {
    table.operationChanged(op);
    create.operationChanged(op);
    host.operationChanged(op, endedNow);
    if (endedNow) vms.operationEnded(op);
  });
  operations.whenListed(table.render);
  host.whenImagesLoaded(create.renderSources);
  whenHistoryLoaded((name) => {
    table.updateRow(name);
    detail.historyLoaded(name);
  });
  byId("login-form").addEventListener("submit", signIn);
  byId("forget-token").addEventListener("click", () => {
    clearToken();
    window.location.reload();
  });
  byId("notice-close").addEventListener("click", () => {
    byId("notice").hidden = true;
  });
  detail.wireDetail();
  create.wireCreate();
  host.wireHost();
  wireActions();
}

wire();
checkHealth();
setInterval(checkHealth, HEALTH_MS);
start();
