"""Readiness in process: the probe's checks and its remote script (on loopback only), and the
core's ReadinessProbe over the fake Tart and clock (cache, vm.ready once per run, the waiter)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator, Sequence

import pytest
from fakes import FakeClock, FakeTart
from support import free_port, startup_refusal

from vm_operator.cli import demo_setup
from vm_operator.config import load_config
from vm_operator.core.errors import NotRunning, ReadyTimeout
from vm_operator.core.event_catalogue import VM_READY
from vm_operator.core.events import EventBus
from vm_operator.core.readiness import Readiness, ReadinessProbe, ready_timeout
from vm_operator.tart.commands import Tart
from vm_operator.tart.names import VmName
from vm_operator.tart.probe import checked_target, connects
from vm_operator.tart.ssh_commands import PROBE_SCRIPT, script_words

GUEST = "192.168.64.2"  # what FakeTart.ip answers (never contacted: the fake probes nothing)


# --- the adapter's checks ------------------------------------------------------------------------


@pytest.mark.parametrize(("ip", "port", "expected"), [
    ("127.0.0.1", 22, ("127.0.0.1", 22)),
    (" 192.168.64.3\n", 2222, ("192.168.64.3", 2222)),
    ("::1", 65535, ("::1", 65535)),
    ("127.12.0.9", 1, ("127.12.0.9", 1)),
])
def test_checked_target_accepts_ip_addresses_and_ports(ip: str, port: int,
                                                       expected: tuple[str, int]) -> None:
    assert checked_target(ip, port) == expected


@pytest.mark.parametrize(("ip", "port"), [
    ("", 22), ("localhost", 22), ("192.168.64.300", 22), ("1.2.3.4; touch /tmp/x", 22),
    ("-oProxyCommand=sh", 22), ("$(id)", 22), ("1.2.3.4/24", 22),
    ("127.0.0.1", 0), ("127.0.0.1", 65536), ("127.0.0.1", -1), ("127.0.0.1", True),
    ("127.0.0.1", "22"), ("127.0.0.1", 22.0),
])
def test_checked_target_refuses_anything_else(ip: str, port: object) -> None:
    with pytest.raises(ValueError):
        checked_target(ip, port)  # type: ignore[arg-type]


class RecordingTransport:
    """Only what Tart.probe uses of a transport."""

    def __init__(self) -> None:
        self.probed: list[tuple[str, int, float]] = []

    def probe(self, ip: str, port: int, timeout: float) -> bool:
        self.probed.append((ip, port, timeout))
        return True


def test_tart_probe_checks_before_the_transport_is_asked() -> None:
    transport = RecordingTransport()
    tart = Tart(transport)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        tart.probe("not-an-ip", 22)
    with pytest.raises(ValueError):
        tart.probe("127.0.0.1", 0)
    assert transport.probed == []
    assert tart.probe(" 127.0.0.1 ", 22) is True
    assert transport.probed == [("127.0.0.1", 22, 1.0)]


@pytest.fixture
def listening() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def test_connects_to_a_listening_port_only(listening: int) -> None:
    assert connects("127.0.0.1", listening) is True
    assert connects("127.0.0.1", free_port()) is False


def run_probe_script(ip: str, port: int, seconds: str = "1") -> int:
    """PROBE_SCRIPT as the SSH transport runs it on the host, run here by /bin/sh."""
    words: Sequence[str] = script_words(PROBE_SCRIPT, ip, str(port), seconds)
    return subprocess.run(list(words), capture_output=True, timeout=30,
                          stdin=subprocess.DEVNULL, check=False).returncode


def test_the_remote_probe_script_tells_a_listening_port_from_a_closed_one(listening: int) -> None:
    assert run_probe_script("127.0.0.1", listening) == 0
    assert run_probe_script("127.0.0.1", free_port()) == 1  # refused: bash's own failure


def test_the_remote_probe_script_gives_up_on_a_connection_that_hangs() -> None:
    """A listener whose backlog is full drops new connections' SYNs (Linux): the connect hangs,
    and the watchdog kills it after the given seconds."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):  # fill the accept queue; later connects hang
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
                fillers.append(filler)
            assert run_probe_script("127.0.0.1", port) == 128 + 9  # SIGKILLed by the watchdog
        finally:
            for filler in fillers:
                filler.close()


def test_the_remote_probe_script_takes_values_as_data_only(tmp_path) -> None:
    marker = tmp_path / "pwned"
    assert run_probe_script(f"127.0.0.1/1;touch {marker}", 22) != 0
    assert run_probe_script("127.0.0.1", f"1$(touch {marker})") != 0  # type: ignore[arg-type]
    assert not marker.exists()


# --- the core ------------------------------------------------------------------------------------


def probe_over(tart: FakeTart, clock: FakeClock, port: int = 22) -> tuple[ReadinessProbe,
                                                                           EventBus]:
    bus = EventBus(clock.utc_now)
    return ReadinessProbe(tart, clock, bus, port, ttl=1.0, poll_interval=0.25,
                          sleep=clock.advance), bus


def vm_probed(state: str, port: int = 22) -> tuple[FakeTart, FakeClock, ReadinessProbe,
                                                  EventBus]:
    """A VM "vm" in ``state`` on a fake Tart, and a probe (and its bus) over it."""
    tart, clock = FakeTart(), FakeClock()
    tart.add("vm", state=state)
    return (tart, clock, *probe_over(tart, clock, port))


def ready_events(bus: EventBus, name: str) -> list[dict[str, object]]:
    return [dict(e.data) for e in bus.history(name) if e.type == VM_READY.type]


def test_no_ip_address_is_not_ready_and_nothing_is_probed() -> None:
    tart, _clock, probe, bus = vm_probed("stopped")  # FakeTart: no IP address unless it runs
    seen = probe.check(VmName("vm"))
    assert seen == Readiness(None, 22, False) and seen.waiting_for == "ip"
    assert tart.count("probe") == 0 and ready_events(bus, "vm") == []


def test_an_address_without_a_listener_is_not_ready() -> None:
    tart, _clock, probe, bus = vm_probed("running", port=2222)
    seen = probe.check(VmName("vm"))
    assert seen == Readiness(GUEST, 2222, False) and seen.waiting_for == "connection"
    assert tart.args("probe") == [(GUEST, 2222)]
    assert ready_events(bus, "vm") == []


def test_ready_is_announced_once_per_run() -> None:
    tart, clock, probe, bus = vm_probed("running")
    tart.accepting.add((GUEST, 22))
    assert probe.check(VmName("vm")).ready is True
    clock.advance(5)
    assert probe.check(VmName("vm")).ready is True  # looked at again: still this run
    assert ready_events(bus, "vm") == [{"ip": GUEST, "port": 22}]
    probe.forget("vm")  # its run ended
    assert probe.check(VmName("vm")).ready is True
    assert ready_events(bus, "vm") == [{"ip": GUEST, "port": 22}] * 2


def test_answers_are_reused_for_the_ttl_unless_fresh_is_asked() -> None:
    tart, clock, probe, _ = vm_probed("running")
    probe.check(VmName("vm"))
    clock.advance(0.5)
    assert probe.check(VmName("vm")).ready is False
    assert (tart.count("ip"), tart.count("probe")) == (1, 1)
    tart.accepting.add((GUEST, 22))
    assert probe.check(VmName("vm"), fresh=True).ready is True
    assert (tart.count("ip"), tart.count("probe")) == (2, 2)
    clock.advance(1.5)
    probe.check(VmName("vm"))
    assert tart.count("ip") == 2  # seen ready: ready until the run ends, unasked
    probe.forget("vm")  # the run ended
    probe.check(VmName("vm"))
    assert tart.count("ip") == 3


def test_a_not_ready_vm_is_looked_at_again_after_the_ttl() -> None:
    tart, clock, probe, _ = vm_probed("running")
    probe.check(VmName("vm"))
    clock.advance(1.5)
    probe.check(VmName("vm"))
    assert (tart.count("ip"), tart.count("probe")) == (2, 2)


def test_the_waiter_returns_once_ready() -> None:
    tart, clock, probe, bus = vm_probed("running")
    looks = []

    def running() -> bool:
        looks.append(clock.monotonic())
        if len(looks) == 3:  # the guest's sshd comes up after a few looks
            tart.accepting.add((GUEST, 22))
        return True

    seen = probe.wait(VmName("vm"), clock.monotonic() + 60, 60, running)
    assert seen.ready is True and seen.ip == GUEST
    assert len(looks) == 3 and ready_events(bus, "vm") == [{"ip": GUEST, "port": 22}]


def test_the_waiter_times_out_naming_what_it_waited_for() -> None:
    _tart, clock, probe, _ = vm_probed("running", port=2222)
    with pytest.raises(ReadyTimeout) as caught:
        probe.wait(VmName("vm"), clock.monotonic() + 2, 2, lambda: True)
    assert (caught.value.waiting_for, caught.value.ip, caught.value.port) == (
        "connection", GUEST, 2222)
    assert f"{GUEST}:2222" in caught.value.detail and "within 2 s" in caught.value.detail


def test_the_waiter_stops_when_the_vm_stops() -> None:
    _tart, clock, probe, _ = vm_probed("stopped")
    with pytest.raises(NotRunning):
        probe.wait(VmName("vm"), clock.monotonic() + 60, 60, lambda: False)


@pytest.mark.parametrize(("seen", "waiting_for", "words"), [
    (Readiness(None, 22, False), "ip", "Tart reported no IP address"),
    (Readiness("127.1.2.3", 2222, False), "connection",
     "no TCP connection to 127.1.2.3:2222 succeeded"),
])
def test_ready_timeout_says_what_was_missing(seen: Readiness, waiting_for: str,
                                             words: str) -> None:
    error = ready_timeout("ci", seen, 7)
    assert error.waiting_for == waiting_for and error.ip == seen.ip and error.port == seen.port
    assert words in error.detail and 'VM "ci" was not ready within 7 s' in error.detail


# --- the setting, and the demo ---------------------------------------------------------------------


def test_the_ready_port_setting() -> None:
    assert load_config([], {}).ready_port == 22
    assert load_config([], {"VM_OPERATOR_READY_PORT": "2222"}).ready_port == 2222
    assert load_config(["--ready-port", "2200"], {"VM_OPERATOR_READY_PORT": "2222"}).ready_port \
        == 2200


@pytest.mark.parametrize("value", ["0", "65536", "-22", "ssh", "22.5"])
def test_a_bad_ready_port_stops_start_up_naming_it(value: str) -> None:
    assert "VM_OPERATOR_READY_PORT" in startup_refusal({"VM_OPERATOR_READY_PORT": value})


@pytest.mark.parametrize("given", [None, "2345"])
def test_the_demo_probes_the_port_its_simulated_guests_listen_on(given: str | None) -> None:
    env = {} if given is None else {"TART_SIM_GUEST_PORT": given}
    config, home = demo_setup(load_config([], {}), env)
    try:
        assert config.ready_port == int(env["TART_SIM_GUEST_PORT"]) != 22
        if given is not None:
            assert config.ready_port == 2345
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_a_run_that_ends_while_it_is_looked_at_leaves_no_ready_behind() -> None:
    tart, _clock, probe, bus = vm_probed("running")
    tart.accepting.add((GUEST, 22))
    looked_up = tart.ip

    def ip_then_the_run_ends(name: VmName, wait: int) -> str:
        found = looked_up(name, wait)
        probe.forget(name)  # the run's end, reported while this look is under way
        return found

    tart.ip = ip_then_the_run_ends  # type: ignore[method-assign]
    assert probe.check(VmName("vm")).ready is True  # what that look saw ...
    tart.ip = looked_up  # type: ignore[method-assign]
    tart.accepting.clear()  # the next run's guest is not up yet
    assert probe.check(VmName("vm")).ready is False  # ... is not the next run's
    assert ready_events(bus, "vm") == []
