"""Ending a TCP connection for good, the one way every layer does it (pure stdlib, imports
nothing of the package): the guest tunnel's socket (``tart/tunnel.py``), the client's WebSocket
(``client/websocket.py``) and the benchmark's event stream close theirs with it."""

from __future__ import annotations

import socket


def close_both_ways(sock: socket.socket) -> None:
    """Shut both directions (a ``recv`` under way in another thread ends, the peer sees the
    end even while another reference to the socket stays open), then close it. Any number of
    times, from any thread: a connection already shut or closed is not an error."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
