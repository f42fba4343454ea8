"""Closing a connection for good (vm_operator/sockets.py): the peer sees the end even while
another reference keeps the socket open, and closing again is no error."""

from __future__ import annotations

import socket

from vm_operator.sockets import close_both_ways


def test_closing_both_ways_ends_the_peer_even_with_another_reference_open() -> None:
    mine, peer = socket.socketpair()
    other = mine.dup()  # a second reference, as a reader thread holds
    try:
        close_both_ways(mine)
        assert peer.recv(1) == b""
        assert mine.fileno() == -1
        close_both_ways(mine)  # again: no error
    finally:
        other.close()
        peer.close()
