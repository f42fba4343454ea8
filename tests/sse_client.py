"""A small Server-Sent Events client for the tests of ``GET /events``: one loopback connection,
a thread that reads it and parses the blocks, a queue the test reads with deadlines.

A block is what the stream sends between blank lines: its fields (``id``, ``event``, ``data``,
``retry``) and its comment lines (``: heartbeat``). ``data`` of an event is parsed as JSON.
"""

from __future__ import annotations

import http.client
import json
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Self


@dataclass
class Block:
    fields: dict[str, str] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)

    @property
    def event(self) -> str | None:
        return self.fields.get("event")

    @property
    def id(self) -> int | None:
        return int(self.fields["id"]) if "id" in self.fields else None

    @property
    def data(self) -> Any:
        return json.loads(self.fields["data"]) if "data" in self.fields else None


class EventReader:
    """``GET path`` as an event stream. ``status``/``headers`` of the answer; ``next(...)`` the
    next block; ``ended`` once the server closed the stream."""

    def __init__(self, port: int, path: str = "/events", headers: dict[str, str] | None = None,
                 timeout: float = 30.0) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.request("GET", path, headers=headers or {})
        self.sock = self.conn.sock  # http.client lets go of it once a response reads to close
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.headers = self.response.headers
        self.blocks: queue.Queue[Block | None] = queue.Queue()
        self.ended = threading.Event()
        self.body = b""
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()
        else:
            self.body = self.response.read()
            self.ended.set()

    def _read(self) -> None:
        block = Block()
        try:
            while True:
                line = self.response.fp.readline()
                if not line:
                    break
                text = line.decode("utf-8").rstrip("\r\n")
                if not text:
                    if block.fields or block.comments:
                        self.blocks.put(block)
                    block = Block()
                elif text.startswith(":"):
                    block.comments.append(text[1:].strip())
                else:
                    name, _, value = text.partition(":")
                    block.fields[name] = value.removeprefix(" ")
        except (OSError, ValueError):
            pass
        finally:
            self.ended.set()
            self.blocks.put(None)

    def next(self, timeout: float = 10.0) -> Block | None:
        """The next block, or None when the stream ended or nothing came within ``timeout``."""
        try:
            return self.blocks.get(timeout=timeout)
        except queue.Empty:
            return None

    def next_event(self, timeout: float = 10.0, type_: str | None = None) -> Block | None:
        """The next block that is an event (of ``type_``, when given), skipping heartbeats,
        ``retry`` and other events; None if none came within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            block = self.next(left)
            if block is None:
                if self.ended.is_set() and self.blocks.empty():
                    return None
                continue
            if block.event is not None and (type_ is None or block.event == type_):
                return block

    def close(self) -> None:
        """Close the connection for real (the server sees it at its next write): shut it
        down, let the reader thread see the end, then close every reference to the socket."""
        try:
            if self.sock is not None:
                self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.ended.wait(5)
        self.response.close()
        if self.sock is not None:
            self.sock.close()
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
