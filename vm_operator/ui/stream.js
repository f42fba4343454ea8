// GET /events read with fetch() and a ReadableStream: EventSource cannot send the
// Authorization header. Reconnects after the server's `retry` with Last-Event-ID, and reports a
// `reset` (the history no longer holds what was missed, or the id is an earlier operator
// process's: ids rise across restarts, never repeat) so that the page reloads its lists; it then
// resumes from the reset's `last_id`. Ids are kept as the strings the server sent.

import { authHeaders } from "./api.js";

const SILENCE_MS = 40000; // the server sends a heartbeat every 15 s: past this, the link is dead

// Parses the text/event-stream format, fed chunk by chunk.
export class EventParser {
  constructor(onMessage) {
    this.onMessage = onMessage; // ({id, event, data}) for each complete event
    this.buffer = "";
    this.reset();
    this.retry = null;
  }

  reset() {
    this.event = "";
    this.data = [];
    this.id = null;
  }

  feed(text) {
    this.buffer += text;
    const lines = this.buffer.split(/\r\n|\r|\n/);
    this.buffer = lines.pop(); // an incomplete line waits for the next chunk
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === "") {
      if (this.data.length > 0 || this.event) {
        this.onMessage({ id: this.id, event: this.event || "message", data: this.data.join("\n") });
      }
      this.reset();
      return;
    }
    if (line.startsWith(":")) return; // a comment: the heartbeat
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id") this.id = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
  }
}

export class EventStream {
  // onEvent(eventJson), onReset(), onStatus("live" | "reconnecting" | "unauthorized")
  constructor({ onEvent, onReset, onStatus }) {
    this.onEvent = onEvent;
    this.onReset = onReset;
    this.onStatus = onStatus;
    this.lastId = null;
    this.retryMs = 2000;
    this.controller = null;
    this.stopped = false;
    this.silenceTimer = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
    clearTimeout(this.silenceTimer);
  }

  heard() {
    clearTimeout(this.silenceTimer);
    this.silenceTimer = setTimeout(() => this.controller && this.controller.abort(), SILENCE_MS);
  }

  async connect() {
    if (this.stopped) return;
    const controller = new AbortController();
    this.controller = controller;
    const headers = { Accept: "text/event-stream", ...authHeaders() };
    if (this.lastId !== null) headers["Last-Event-ID"] = this.lastId;
    try {
      this.heard();
      const response = await fetch("/events", {
        headers, credentials: "omit", cache: "no-store", signal: controller.signal,
      });
      if (response.status === 401) {
        this.stopped = true;
        this.onStatus("unauthorized");
        return;
      }
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      this.onStatus("live");
      const parser = new EventParser((message) => this.message(message));
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        this.heard();
        parser.feed(value);
        if (parser.retry !== null) this.retryMs = parser.retry;
      }
    } catch (error) {
      // a dropped connection, a silent one we aborted, or an operator that is down
    }
    clearTimeout(this.silenceTimer);
    if (this.stopped) return;
    this.onStatus("reconnecting");
    setTimeout(() => this.connect(), this.retryMs);
  }

  message({ id, event, data }) {
    if (id !== null && id !== "") this.lastId = id;
    let parsed;
    try {
      parsed = JSON.parse(data);
    } catch (error) {
      return;
    }
    if (event === "reset") {
      if (parsed && parsed.last_id !== undefined && (id === null || id === "")) {
        this.lastId = String(parsed.last_id);
      }
      this.onReset();
      return;
    }
    this.onEvent(parsed);
  }
}
