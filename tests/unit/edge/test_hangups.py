"""The streams' hang-up watch (edge/hangups.py), over socket pairs: a client's close is told at
once, bytes it sends are dropped (up to a bound), a forgotten connection is told nothing."""

from __future__ import annotations

import socket
import threading

from vm_operator.edge.hangups import MAX_IGNORED, Hangups


def pair() -> tuple[socket.socket, socket.socket]:
    server, client = socket.socketpair()
    return server, client


def test_a_clients_close_is_told_once() -> None:
    hangups = Hangups()
    server, client = pair()
    told: list[int] = []
    gone = threading.Event()
    hangups.watch(server, lambda: (told.append(1), gone.set()))
    client.close()
    assert gone.wait(10)
    threading.Event().wait(0.05)  # a second call would come now
    assert told == [1]
    server.close()


def test_bytes_a_client_sends_are_dropped_up_to_the_bound() -> None:
    hangups = Hangups()
    server, client = pair()
    gone = threading.Event()
    hangups.watch(server, gone.set)
    client.sendall(b"x" * 1000)
    assert not gone.wait(0.2)  # read and dropped, the stream goes on
    client.setblocking(False)
    sent = 0
    while sent <= MAX_IGNORED and not gone.is_set():
        try:
            sent += client.send(b"y" * 4096)
        except BlockingIOError:
            gone.wait(0.01)
    assert gone.wait(10)
    server.close()
    client.close()


def test_many_connections_are_watched_by_one_thread_and_forgotten_ones_are_not_told() -> None:
    hangups = Hangups()
    pairs = [pair() for _ in range(20)]
    told = [threading.Event() for _ in pairs]
    for (server, _), event in zip(pairs, told, strict=True):
        hangups.watch(server, event.set)
    hangups.forget(pairs[0][0])
    for _, client in pairs:
        client.close()
    assert all(event.wait(10) for event in told[1:])
    assert not told[0].wait(0.1)
    for server, _ in pairs:
        server.close()
