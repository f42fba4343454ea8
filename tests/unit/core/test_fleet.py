"""The declarative file's pure core (core/fleet.py): parsing, refusals with line and key, the plan;
and what ``vm-operator plan`` and ``POST /config/reload`` tell a user, pinned word for word (a
changed message is a failed test): the refusals, the bounds of the values at their edges, and
the observed records the plan reads."""

from __future__ import annotations

import pytest
from support import REPO_ROOT

from vm_operator.core.fleet import (
    Change,
    Fleet,
    FleetError,
    Observed,
    ObservedSpec,
    Resources,
    Step,
    VmEntry,
    decode_fleet,
    key_line,
    observed_spec,
    observed_vm,
    parse_fleet,
    plan,
)
from vm_operator.tart.names import VmName

EXAMPLE = REPO_ROOT / "examples" / "vms.toml"
IMAGE = "ghcr.io/cirruslabs/macos-sequoia-base:latest"

GOOD = f'''\
prune = true

[vms.ci]
from = "{IMAGE}"
cpu = 2
memory_mb = 4096
disk_gb = 40
display = "1920x1080"
desired = "running"
restart = "always"

[vms."dev.box"]
from = "ci"
ephemeral = true
'''


def test_a_good_file_gives_typed_records() -> None:
    fleet = parse_fleet(GOOD)
    assert fleet == Fleet(prune=True, vms=(
        VmEntry(VmName("ci"), VmName(IMAGE), Resources(2, 4096, 40, "1920x1080"),
                "running", "always", False),
        VmEntry(VmName("dev.box"), VmName("ci"), ephemeral=True),
    ))


def test_an_empty_file_is_an_empty_fleet_without_prune() -> None:
    assert parse_fleet("") == Fleet((), False)
    assert parse_fleet("# nothing yet\n") == Fleet((), False)


def test_the_example_recreates_the_original_fleet() -> None:
    fleet = parse_fleet(EXAMPLE.read_text())
    assert fleet.prune is False
    by_name = {vm.name: vm for vm in fleet.vms}
    assert set(by_name) == {"macos-ci", "macos-dev"}
    ci, dev = by_name["macos-ci"], by_name["macos-dev"]
    assert ci.source == dev.source == IMAGE
    # the original's resources, raised to the image's minimum (4 CPUs, 8192 MB, a 50 GB disk)
    assert (ci.resources, ci.desired, ci.restart) == (Resources(4, 8192, 50), "running", "always")
    assert (dev.resources, dev.desired) == (Resources(4, 8192, 60), "stopped")


# (text, line, key, words of the reason): every refusal names the line and the key
REFUSED = [
    # TOML syntax: the line tomllib gives, and the key written on it
    ('[vms.ci]\nfrom = "x"\ncpu = \n', 3, "vms.ci.cpu", "not valid TOML"),
    ('[vms.ci]\nfrom = "x"\n[vms.ci]\n', 3, "vms.ci", "not valid TOML"),
    ('prune = true\n[vms.ci\n', 2, "vms.ci", "not valid TOML"),
    ('[vms.ci]\nfrom = "x"\nfrom = "y"\n', 3, "vms.ci.from", "not valid TOML"),
    # unknown keys, at the top and in a VM
    ('prune = false\nprunes = true\n', 2, "prunes", "unknown key"),
    ('[vm.ci]\nfrom = "x"\n', 1, "vm", "unknown key"),
    ('[vms.ci]\nfrom = "x"\n\n# resources\ncpus = 4\n', 5, "vms.ci.cpus", "unknown key"),
    ('[vms]\nci = { from = "x", auto_start = true }\n', 2, "vms.ci.auto_start", "unknown key"),
    ('vms.ci.from = "x"\nvms.ci.ssh = true\n', 2, "vms.ci.ssh", "unknown key"),
    ('[vms.a]\nfrom = "x"\n[vms.b]\nfrom = "x"\nport = 2223\n', 5, "vms.b.port", "unknown key"),
    # bad values
    ('prune = "yes"\n', 1, "prune", "true or false"),
    ('vms = 3\n', 1, "vms", "table of VMs"),
    ('[vms]\nci = 3\n', 2, "vms.ci", "must be a table"),
    ('[vms.ci]\ncpu = 2\n', 1, "vms.ci.from", "from is missing"),
    ('[vms.ci]\nfrom = 3\n', 2, "vms.ci.from", "must be a string"),
    ('[vms.ci]\nfrom = "-rf"\n', 2, "vms.ci.from", "invalid source"),
    ('[vms.ci]\nfrom = "x"\ncpu = 0\n', 3, "vms.ci.cpu", "from 1 to 64"),
    ('[vms.ci]\nfrom = "x"\ncpu = true\n', 3, "vms.ci.cpu", "whole number"),
    ('[vms.ci]\nfrom = "x"\nmemory_mb = "4096"\n', 3, "vms.ci.memory_mb", "whole number"),
    ('[vms.ci]\nfrom = "x"\nmemory_mb = 256\n', 3, "vms.ci.memory_mb", "from 512"),
    ('[vms.ci]\nfrom = "x"\ndisk_gb = 5000\n', 3, "vms.ci.disk_gb", "from 1 to 4096"),
    ('[vms.ci]\nfrom = "x"\ndisplay = "big"\n', 3, "vms.ci.display", "WIDTHxHEIGHT"),
    # the whole value is the size: no prefix match
    ('[vms.ci]\nfrom = "x"\ndisplay = "1920x1080junk"\n', 3, "vms.ci.display", "WIDTHxHEIGHT"),
    ('[vms.ci]\nfrom = "x"\ndisplay = "1920x1080\\n"\n', 3, "vms.ci.display", "WIDTHxHEIGHT"),
    ('[vms.ci]\nfrom = "x"\ndisplay = " 1920x1080"\n', 3, "vms.ci.display", "WIDTHxHEIGHT"),
    ('[vms.ci]\nfrom = "x"\ndesired = "up"\n', 3, "vms.ci.desired", "running, stopped"),
    ('[vms.ci]\nfrom = "x"\nrestart = "sometimes"\n', 3, "vms.ci.restart", "never, on-failure"),
    ('[vms.ci]\nfrom = "x"\nephemeral = "no"\n', 3, "vms.ci.ephemeral", "true or false"),
    # VM names: validated as the API validates them, and local
    ('[vms."a b"]\nfrom = "x"\n', 1, 'vms."a b"', "invalid VM name"),
    ('[vms."-x"]\nfrom = "x"\n', 1, "vms.-x", "invalid VM name"),
    ('[vms."org/img"]\nfrom = "x"\n', 1, 'vms."org/img"', "without '/'"),
    ('[vms.""]\nfrom = "x"\n', 1, 'vms.""', "invalid VM name"),
]


@pytest.mark.parametrize(("text", "line", "key", "words"), REFUSED,
                         ids=[f"{row[2]}-{row[3]}" for row in REFUSED])
def test_a_bad_file_is_refused_whole_with_its_line_and_key(text: str, line: int, key: str | None,
                                                           words: str) -> None:
    with pytest.raises(FleetError) as caught:
        parse_fleet(text)
    assert (caught.value.line, caught.value.key) == (line, key)
    assert words in caught.value.reason
    assert str(caught.value).startswith(f"line {line}")


@pytest.mark.parametrize(("text", "table", "key", "line"), [
    ('a = 1\n[vms.ci]\ncpu = 2\n', ("vms", "ci"), "cpu", 3),
    ('[vms.other]\ncpu = 1\n[vms.ci]\ncpu = 2\n', ("vms", "ci"), "cpu", 4),
    ('[vms."c i"]\n  "cpu" = 2\n', ("vms", "c i"), "cpu", 2),
    ("[vms.'ci']\ncpu=2\n", ("vms", "ci"), "cpu", 2),
    ('[vms]\nci.cpu = 2\n', ("vms", "ci"), "cpu", 2),
    ('[vms]\nci = {cpu = 2}\n', ("vms", "ci"), "cpu", 2),  # inline: the line of the table
    ('[vms.ci]\n# cpu = 1\nmemory = 2\n', ("vms", "ci"), "cpu", 1),  # comments are no keys
    ('x = 1\n', ("vms",), "ci", None),
])
def test_the_line_of_a_key(text: str, table: tuple[str, ...], key: str, line: int | None) -> None:
    assert key_line(text, table, key) == line


# --- the plan ---------------------------------------------------------------------------------

CI = VmEntry(VmName("ci"), VmName(IMAGE), Resources(2, 4096, 40), "running", "always")


SIZED = Resources(2, 4096, 40)
FROM_FILE = ObservedSpec("running", "always", "config", True)


def observed(name: str = "ci", state: str = "stopped", resources: Resources = SIZED,
             spec: ObservedSpec | None = FROM_FILE) -> Observed:
    return Observed(name, state, resources, spec)


PLANS = [
    # nothing to do
    ("in-place", Fleet((CI,)), [observed(state="running")], []),
    ("bigger-disk-kept", Fleet((CI,)),
     [observed(state="running", resources=Resources(2, 4096, 60))], []),
    ("unknown-resources", Fleet((CI,)), [observed(state="running", resources=Resources())], []),
    ("being-created", Fleet((CI,)), [observed(state="creating", spec=None)], []),
    ("no-wishes", Fleet((VmEntry(VmName("ci"), VmName(IMAGE)),)),
     [observed(state="suspended", spec=None)], []),
    # create
    ("create", Fleet((CI,)), [],
     [(f"create ci from {IMAGE}: cpu 2, memory_mb 4096, disk_gb 40, desired running, "
       "restart always")]),
    ("create-bare", Fleet((VmEntry(VmName("e"), VmName("ci"), ephemeral=True),)), [],
     ["create e from ci: ephemeral"]),
    # set: stopped now, or deferred while it runs
    ("set-stopped", Fleet((VmEntry(VmName("ci"), VmName(IMAGE), Resources(4, 8192, 80,
                                                                         "1920x1080")),)),
     [observed(resources=Resources(2, 4096, 40, "1024x768"))],
     [("set ci: cpu 2 -> 4, memory_mb 4096 -> 8192, disk_gb 40 -> 80, "
       "display 1024x768 -> 1920x1080")]),
    ("set-running", Fleet((VmEntry(VmName("ci"), VmName(IMAGE), Resources(cpu=4)),)),
     [observed(state="running")],
     ["set ci: cpu 2 -> 4 (the VM is running: its resources change at its next stop)"]),
    ("set-restart", Fleet((CI,)),
     [observed(state="running", spec=ObservedSpec("running", "never", "api", True))],
     ["set ci: restart never -> always"]),
    ("set-desired-already-there", Fleet((CI,)),
     [observed(state="running", spec=ObservedSpec(None, "always", "api", False))],
     ["set ci: desired unset -> running"]),
    # start and stop
    ("start", Fleet((CI,)), [observed(state="stopped")], ["start ci (it is stopped)"]),
    ("start-after-api-stop", Fleet((CI,)),
     [observed(spec=ObservedSpec("stopped", "always", "api", True))],
     ["start ci (it is stopped)"]),
    ("stop", Fleet((VmEntry(VmName("ci"), VmName(IMAGE), desired="stopped"),)),
     [observed(state="running")], ["stop ci (it is running)"]),
    ("stop-suspended", Fleet((VmEntry(VmName("ci"), VmName(IMAGE), desired="stopped"),)),
     [observed(state="suspended")], ["stop ci (it is suspended)"]),
    ("stop-and-set-deferred",
     Fleet((VmEntry(VmName("ci"), VmName(IMAGE), Resources(cpu=4), desired="stopped"),)),
     [observed(state="running")],
     ["stop ci (it is running)",
      "set ci: cpu 2 -> 4 (the VM is running: its resources change at its next stop)"]),
    # delete: only with prune, and only what the file created
    ("prune", Fleet((), prune=True), [observed("old")],
     ["delete old (not in the file, prune = true, created by the operator from the file)"]),
    ("no-prune", Fleet((), prune=False), [observed("old")], []),
    ("prune-spares-api-source", Fleet((), prune=True),
     [observed("old", spec=ObservedSpec("running", "always", "api", True))], []),
    ("prune-spares-not-created", Fleet((), prune=True),
     [observed("old", spec=ObservedSpec("running", "always", "config", False))], []),
    ("prune-spares-no-spec", Fleet((), prune=True), [observed("old", spec=None)], []),
    ("prune-spares-listed", Fleet((CI,), prune=True), [observed("ci", "running")], []),
    # the order: stops and deletes before creates and starts
    ("order", Fleet((CI, VmEntry(VmName("b"), VmName(IMAGE), desired="stopped"),
                     VmEntry(VmName("new"), VmName(IMAGE))), prune=True),
     [observed("ci"), observed("b", "running"), observed("gone")],
     ["stop b (it is running)",
      "delete gone (not in the file, prune = true, created by the operator from the file)",
      f"create new from {IMAGE}", "start ci (it is stopped)"]),
]


@pytest.mark.parametrize(("fleet", "now", "lines"), [row[1:] for row in PLANS],
                         ids=[row[0] for row in PLANS])
def test_the_plan_one_line_per_step(fleet: Fleet, now: list[Observed], lines: list[str]) -> None:
    assert [step.render() for step in plan(fleet, now)] == lines


def test_a_set_step_carries_the_resources_to_change() -> None:
    entry = VmEntry(VmName("ci"), VmName(IMAGE), Resources(4, 4096, 40, None), restart="always")
    (step,) = plan(Fleet((entry,)), [observed(spec=ObservedSpec(None, "never", "api", True))])
    assert step == Step("set", "ci", entry, (Change("cpu", 2, 4), Change("restart", "never",
                                                                            "always")))
    assert step.resources() == Resources(cpu=4)


VM_KEYS = "from, cpu, memory_mb, disk_gb, display, desired, restart, ephemeral"
DISPLAY = 'must be WIDTHxHEIGHT in pixels, e.g. "1920x1080"'

REFUSALS = [
    ('[vms.ci]\nfrom = "x"\ncpu = \n', "line 3, key vms.ci.cpu: not valid TOML: Invalid value"),
    ('[vms.ci]\nfrom = "x', "line 2, key vms.ci.from: not valid TOML: Unterminated string"),
    ("a = [1,\n2", "line 2: not valid TOML: Unclosed array"),
    ("prune = false\nprunes = true\n",
     "line 2, key prunes: unknown key (the file takes prune, vms)"),
    ('[vms.ci]\nfrom = "x"\ncpus = 4\n',
     f"line 3, key vms.ci.cpus: unknown key (a VM takes {VM_KEYS})"),
    ('prune = "yes"\n', "line 1, key prune: must be true or false"),
    ("vms = 3\n", "line 1, key vms: must be a table of VMs ([vms.NAME])"),
    ("[vms]\nci = 3\n", "line 2, key vms.ci: must be a table ([vms.NAME]) of the VM's settings"),
    ("[vms.ci]\ncpu = 2\n", ("line 1, key vms.ci.from: the key from is missing: what to clone (an "
     "OCI reference or a local VM)")),
    ("[vms.ci]\nfrom = 3\n", ("line 2, key vms.ci.from: must be a string: an OCI reference or a "
     "local VM")),
    ('[vms.ci]\nfrom = "-rf"\n', ("line 2, key vms.ci.from: invalid source: a VM name may not "
     "start with '-'")),
    ('[vms."-x"]\nfrom = "x"\n', ("line 1, key vms.-x: invalid VM name: a VM name may not start "
     "with '-'")),
    ('[vms."org/img"]\nfrom = "x"\n', ("line 1, key vms.\"org/img\": invalid VM name: a VM name "
     "must be local, without '/'")),
    ('[vms.ci]\nfrom = "x"\ncpu = 65\n', ("line 3, key vms.ci.cpu: must be a whole number from 1 "
     "to 64")),
    ('[vms.ci]\nfrom = "x"\ncpu = 2.0\n', ("line 3, key vms.ci.cpu: must be a whole number from 1 "
     "to 64")),
    ('[vms.ci]\nfrom = "x"\nmemory_mb = 511\n', ("line 3, key vms.ci.memory_mb: must be a whole "
     "number from 512 to 1048576")),
    ('[vms.ci]\nfrom = "x"\nmemory_mb = 1048577\n', ("line 3, key vms.ci.memory_mb: must be a "
     "whole number from 512 to 1048576")),
    ('[vms.ci]\nfrom = "x"\ndisk_gb = 0\n', ("line 3, key vms.ci.disk_gb: must be a whole number "
     "from 1 to 4096")),
    ('[vms.ci]\nfrom = "x"\ndisk_gb = 4097\n', ("line 3, key vms.ci.disk_gb: must be a whole "
     "number from 1 to 4096")),
    ('[vms.ci]\nfrom = "x"\ndisplay = 1920\n', f"line 3, key vms.ci.display: {DISPLAY}"),
    ('[vms.ci]\nfrom = "x"\ndisplay = "0x10"\n', f"line 3, key vms.ci.display: {DISPLAY}"),
    ('[vms.ci]\nfrom = "x"\ndisplay = "100000x1"\n', f"line 3, key vms.ci.display: {DISPLAY}"),
    ('[vms.ci]\nfrom = "x"\ndesired = "up"\n', ("line 3, key vms.ci.desired: must be one of "
     "running, stopped")),
    ('[vms.ci]\nfrom = "x"\nrestart = "sometimes"\n', ("line 3, key vms.ci.restart: must be one "
     "of never, on-failure, always")),
    ('[vms.ci]\nfrom = "x"\nephemeral = "no"\n', ("line 3, key vms.ci.ephemeral: must be true or "
     "false")),
]


@pytest.mark.parametrize(("text", "message"), REFUSALS)
def test_a_refusal_says_where_and_why_word_for_word(text: str, message: str) -> None:
    with pytest.raises(FleetError) as caught:
        parse_fleet(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(("values", "resources"), [
    ('cpu = 1\nmemory_mb = 512\ndisk_gb = 1\ndisplay = "1x1"\n', Resources(1, 512, 1, "1x1")),
    ('cpu = 64\nmemory_mb = 1048576\ndisk_gb = 4096\ndisplay = "99999x99999"\n',
     Resources(64, 1048576, 4096, "99999x99999")),
    ("", Resources()),
])
def test_the_bounds_are_inclusive(values: str, resources: Resources) -> None:
    (entry,) = parse_fleet(f'[vms.ci]\nfrom = "x"\n{values}').vms
    assert entry == VmEntry(VmName("ci"), VmName("x"), resources)


def test_a_vm_that_asks_for_nothing_takes_the_defaults() -> None:
    (entry,) = parse_fleet('[vms.ci]\nfrom = "x"\nephemeral = false\n').vms
    assert (entry.desired, entry.restart, entry.ephemeral) == (None, None, False)
    assert parse_fleet("prune = false\n") == Fleet((), False)
    assert parse_fleet("prune = true\n").prune is True


@pytest.mark.parametrize(("data", "line"), [(b"\xff", 1), (b'[vms.ci]\nfrom = "x"\n# \xff\n', 3)])
def test_a_file_that_is_not_utf8_is_refused_at_its_line(data: bytes, line: int) -> None:
    with pytest.raises(FleetError) as caught:
        decode_fleet(data)
    assert (str(caught.value), caught.value.line, caught.value.key) == (
        f"line {line}: not UTF-8 text (a TOML file is UTF-8)", line, None)


def test_a_utf8_file_is_decoded() -> None:
    assert decode_fleet(b'prune = true\n# caf\xc3\xa9\n') == Fleet((), True)


@pytest.mark.parametrize(("error", "text"), [
    (FleetError("bad"), "bad"),
    (FleetError("bad", key="k"), "key k: bad"),
    (FleetError("bad", 3), "line 3: bad"),
    (FleetError("bad", 3, "a.b"), "line 3, key a.b: bad"),
])
def test_a_refusal_names_what_it_knows(error: FleetError, text: str) -> None:
    assert (error.describe(), str(error), error.reason) == (text, text, "bad")


@pytest.mark.parametrize(("data", "spec"), [
    (None, None),
    ("running", None),
    ({}, ObservedSpec(None, None, "api", False)),
    ({"desired": "running", "restart": "on-failure", "source": "config",
      "created_at": "2026-01-01T00:00:00.000Z"}, ObservedSpec("running", "on-failure", "config",
                                                              True)),
    ({"desired": "up", "restart": "sometimes", "source": 3, "created_at": 5},
     ObservedSpec(None, None, "api", False)),
    ({"desired": "stopped", "restart": "never", "created_at": None},
     ObservedSpec("stopped", "never", "api", False)),
])
def test_the_spec_the_plan_reads(data: object, spec: ObservedSpec | None) -> None:
    assert observed_spec(data) == spec


@pytest.mark.parametrize(("detail", "vm"), [
    ({"name": "ci", "state": "running", "cpu": 2, "memory_mb": 4096, "disk_gb": 40,
      "display": "1024x768"}, Observed("ci", "running", Resources(2, 4096, 40, "1024x768"))),
    ({"name": "ci", "state": "stopped", "cpu": True, "memory_mb": "4096", "disk_gb": None,
      "display": 1024}, Observed("ci", "stopped", Resources())),
    ({"name": "ci", "state": "stopped"}, Observed("ci", "stopped", Resources())),
])
def test_the_vm_the_plan_reads(detail: dict[str, object], vm: Observed) -> None:
    spec = ObservedSpec("running")
    assert observed_vm(detail, spec) == Observed(vm.name, vm.state, vm.resources, spec)


@pytest.mark.parametrize(("wanted", "now", "changes"), [
    (Resources(2, 4096, 40, "1x1"), Resources(2, 4096, 40, "1x1"), []),
    (Resources(4, 8192, 80, "2x2"), Resources(2, 4096, 40, "1x1"),
     [Change("cpu", 2, 4), Change("memory_mb", 4096, 8192), Change("disk_gb", 40, 80),
      Change("display", "1x1", "2x2")]),
    (Resources(disk_gb=40), Resources(disk_gb=60), []),  # a disk only grows
    (Resources(disk_gb=60), Resources(disk_gb=60), []),
    (Resources(cpu=4), Resources(), []),  # not reported: not compared
    (Resources(), Resources(4, 4096, 40, "1x1"), []),  # not asked: left alone
])
def test_the_resources_to_change(wanted: Resources, now: Resources,
                                 changes: list[Change]) -> None:
    (entry,) = [VmEntry(VmName("ci"), VmName("x"), wanted)]
    steps = plan(Fleet((entry,)), [Observed("ci", "stopped", now)])
    assert steps == ([Step("set", "ci", entry, tuple(changes))] if changes else [])


def test_a_step_without_changes_has_no_resources() -> None:
    step = Step("set", "ci", changes=(Change("restart", "never", "always"),
                                      Change("desired", None, "running")))
    assert step.resources() == Resources()
    assert step.render() == "set ci: restart never -> always, desired unset -> running"
    assert Step("start", "ci").render() == "start ci"
    assert Step("create", "ci").render() == "create ci"


@pytest.mark.parametrize(("text", "message"), [
    # TOML's "at end of document": the last line, also of a one-line file
    ("a = [1", "line 1, key a: not valid TOML: Unclosed array"),
    # a quoted key left open is no key (and no crash)
    ('"abc = 1\n', "line 1: not valid TOML: Illegal character '\\n'"),
    # the line of a key inside an inline table is the table's, after blank lines too
    ("\n\n\n[vms]\nci = { from = 3 }\n",
     "line 5, key vms.ci.from: must be a string: an OCI reference or a local VM"),
    # a header-like line inside a multi-line string does not move it
    ('[vms]\nci = { from = 3 }\n[vms.other]\nfrom = """\n[vms.ci]\n"""\n',
     "line 2, key vms.ci.from: must be a string: an OCI reference or a local VM"),
    # a quoted name with an escape is found where it is written
    ('[vms."c\\u0069"]\nfrom = 3\n',
     "line 2, key vms.ci.from: must be a string: an OCI reference or a local VM"),
    # a key that starts with X (a bare key like any other)
    ('[vms.ci]\nfrom = "x"\n Xtra = 1\n',
     f"line 3, key vms.ci.Xtra: unknown key (a VM takes {VM_KEYS})"),
    ('[vms.ci]\nfrom = "x"\n\t  Xtra = 1\n',
     f"line 3, key vms.ci.Xtra: unknown key (a VM takes {VM_KEYS})"),
])
def test_where_a_refusal_points(text: str, message: str) -> None:
    with pytest.raises(FleetError) as caught:
        parse_fleet(text)
    assert str(caught.value) == message


ENTRY = VmEntry(VmName("ci"), VmName("x"), Resources(display="1920x1080"), "running", "always")


@pytest.mark.parametrize(("entry", "now", "steps"), [
    (ENTRY, Observed("ci", "stopped", Resources(display="1920x1080"),
                     ObservedSpec("running", "always")),
     [Step("start", "ci", ENTRY, note="it is stopped")]),
    (VmEntry(VmName("ci"), VmName("x"), desired="stopped"), Observed("ci", "running"),
     [Step("stop", "ci", VmEntry(VmName("ci"), VmName("x"), desired="stopped"),
           note="it is running")]),
    (VmEntry(VmName("ci"), VmName("x"), desired="stopped"),
     Observed("ci", "stopped", spec=ObservedSpec("stopped")), []),
    (ENTRY, Observed("ci", "running", Resources(display="1920x1080"),
                     ObservedSpec("stopped", "always")),
     [Step("set", "ci", ENTRY, (Change("desired", "stopped", "running"),))]),
])
def test_each_step_carries_its_entry(entry: VmEntry, now: Observed, steps: list[Step]) -> None:
    assert plan(Fleet((entry,)), [now]) == steps


def test_a_create_names_every_setting() -> None:
    (step,) = plan(Fleet((ENTRY,)), [])
    assert step.render() == "create ci from x: display 1920x1080, desired running, restart always"


def test_prune_spares_a_vm_being_created() -> None:
    creating = Observed("old", "creating", spec=ObservedSpec("running", None, "config", True))
    assert plan(Fleet((), prune=True), [creating]) == []


@pytest.mark.parametrize(("wanted", "now", "changes"), [
    (Resources(2, 8192), Resources(2, 4096), [Change("memory_mb", 4096, 8192)]),
    (Resources(cpu=2, display="2x2"), Resources(cpu=2, display="1x1"),
     [Change("display", "1x1", "2x2")]),
    (Resources(disk_gb=40, display="2x2"), Resources(disk_gb=60, display="1x1"),
     [Change("display", "1x1", "2x2")]),
    (Resources(4, 8192, 80, "2x2"), Resources(None, 4096, 40, None),
     [Change("memory_mb", 4096, 8192), Change("disk_gb", 40, 80)]),
])
def test_every_resource_is_compared(wanted: Resources, now: Resources,
                                    changes: list[Change]) -> None:
    entry = VmEntry(VmName("ci"), VmName("x"), wanted)
    assert plan(Fleet((entry,)), [Observed("ci", "stopped", now)]) == (
        [Step("set", "ci", entry, tuple(changes))])


def test_a_set_step_carries_every_resource() -> None:
    step = Step("set", "ci", changes=(
        Change("cpu", 2, 4), Change("memory_mb", 4096, 8192), Change("disk_gb", 40, 80),
        Change("display", "1x1", "2x2"), Change("restart", "never", "always")))
    assert step.resources() == Resources(4, 8192, 80, "2x2")


@pytest.mark.parametrize(("text", "line", "reason"), [
    ("  [vms.ci]\n  from = 3\n", 2, "must be a string"),  # an indented header
    ('["vms".ci]\nfrom = 3\n', 2, "must be a string"),  # a quoted part, then a dot
    ('[vms.ci]\nfrom = "x"\n"xy"= 1\n', 3, "unknown key"),  # a quoted key, then at once =
    ('[vms.ci]\nfrom = "x"\n"x\\"y" = 1\n', 3, "unknown key"),  # an escaped quote in a key
    ('[vms.ci]\nfrom = "x"\n"x\\"" = 1\n', 3, "unknown key"),  # ... at its end
    ("[vms.ci]\nfrom = \"x\"\n'x\\' = 1\n", 3, "unknown key"),  # a literal key: \ is a \
    ("[vms.ci]\nfrom = \"x\"\n'x\\u0079' = 1\n", 3, "unknown key"),  # ... and no escape
    ('[vms.ci]\nfrom = "x"\n"x\\u0079" = 1\n', 3, "unknown key"),  # a quoted key is unescaped
])
def test_quoted_keys_are_read_as_toml_reads_them(text: str, line: int, reason: str) -> None:
    with pytest.raises(FleetError) as caught:
        parse_fleet(text)
    assert caught.value.line == line and caught.value.reason.startswith(reason)


@pytest.mark.parametrize(("text", "message"), [
    ('["vms\n', "line 1: not valid TOML: Illegal character '\\n'"),  # an open quote: no key
    ('"x"X = 1\n', "line 1: not valid TOML: Expected '=' after a key in a key/value pair"),
])
def test_a_line_that_writes_no_key_names_none(text: str, message: str) -> None:
    with pytest.raises(FleetError) as caught:
        parse_fleet(text)
    assert str(caught.value) == message
