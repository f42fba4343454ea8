"""The declarative file's pure core (core/fleet.py): parsing, refusals with line and key, the plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from vm_operator.core.fleet import (
    Change,
    Fleet,
    FleetError,
    Observed,
    ObservedSpec,
    Resources,
    Step,
    VmEntry,
    key_line,
    parse_fleet,
    plan,
)
from vm_operator.tart.names import VmName

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vms.toml"
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
