"""Parsing Tart's JSON, all three shapes of ``tart list`` among it."""

import json

import pytest

from vm_operator.tart.parse import (
    TartBadOutput,
    error_message,
    parse_ip,
    parse_version,
    parse_vm_info,
    parse_vm_list,
)

V2_31 = {"Source": "local", "Name": "a", "Disk": 50, "Size": 21,
         "Accessed": "2026-01-02T03:04:05Z", "Running": True, "State": "running"}
V2_15 = {"Source": "local", "Name": "a", "Disk": 50, "Size": 21, "SizeOnDisk": 19,
         "Running": False, "State": "suspended"}
V1_7 = {"Source": "OCI", "Name": "ghcr.io/x/y:1", "Disk": 50, "Size": 21, "Running": False}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (V2_31, {"name": "a", "source": "local", "state": "running", "status": "running",
                 "running": True, "disk_gb": 50, "size_gb": 21,
                 "accessed": "2026-01-02T03:04:05Z"}),
        (V2_15, {"name": "a", "source": "local", "state": "suspended", "status": "suspended",
                 "running": False, "disk_gb": 50, "size_gb": 21, "accessed": None}),
        (V1_7, {"name": "ghcr.io/x/y:1", "source": "oci", "state": "stopped", "status": "stopped",
                "running": False, "disk_gb": 50, "size_gb": 21, "accessed": None}),
        ({**V1_7, "Running": True}, {"name": "ghcr.io/x/y:1", "source": "oci", "state": "running",
                                     "status": "running", "running": True, "disk_gb": 50,
                                     "size_gb": 21, "accessed": None}),
        ({**V2_31, "FutureKey": [1, 2], "State": "Stopped"},
         {"name": "a", "source": "local", "state": "stopped", "status": "stopped",
          "running": False, "disk_gb": 50, "size_gb": 21, "accessed": "2026-01-02T03:04:05Z"}),
    ],
)
def test_every_list_shape_maps_to_the_api_vm(raw: dict, expected: dict) -> None:
    assert parse_vm_list(json.dumps([raw])) == [expected]


def test_empty_list() -> None:
    assert parse_vm_list("[]\n") == []


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "{}",
        '"a"',
        "[1]",
        '[{"Source": "local"}]',
        json.dumps([{**V2_31, "State": "exploded"}]),
        json.dumps([{**V2_31, "Source": "ftp"}]),
        json.dumps([{**V2_31, "Disk": "big"}]),
        json.dumps([{**V2_31, "Disk": True}]),
        json.dumps([{k: v for k, v in V1_7.items() if k != "Running"}]),
    ],
)
def test_unexpected_list_output_is_bad_output(text: str) -> None:
    with pytest.raises(TartBadOutput):
        parse_vm_list(text)


def test_vm_info() -> None:
    text = json.dumps({"OS": "darwin", "CPU": 4, "Memory": 8192, "Disk": 50, "DiskFormat": "raw",
                       "Size": "20.123", "Display": "1024x768", "Running": False,
                       "State": "stopped", "New": 1})
    assert parse_vm_info(text) == {"os": "darwin", "cpu": 4, "memory_mb": 8192,
                                   "disk_format": "raw", "display": "1024x768"}


@pytest.mark.parametrize("text", ["", "[]", "garbage", json.dumps({"CPU": "four"})])
def test_vm_info_bad_output(text: str) -> None:
    with pytest.raises(TartBadOutput):
        parse_vm_info(text)


@pytest.mark.parametrize(("text", "version"), [("2.31.0\n", "2.31.0"), ("1.7.3", "1.7.3")])
def test_version(text: str, version: str) -> None:
    assert parse_version(text) == version


@pytest.mark.parametrize(("text", "ip"), [("192.168.64.3\n", "192.168.64.3"), (" 10.0.0.1 ", "10.0.0.1")])
def test_ip(text: str, ip: str) -> None:
    assert parse_ip(text) == ip


@pytest.mark.parametrize("text", ["", "no ip", "192.168.64.300", "1.2.3.4 5.6.7.8"])
def test_ip_bad_output(text: str) -> None:
    with pytest.raises(TartBadOutput):
        parse_ip(text)


@pytest.mark.parametrize(
    ("stderr", "code", "message"),
    [
        ('Error: the specified VM "x" does not exist\n', 2, 'Error: the specified VM "x" does not exist'),
        ("warning: something\nVM \"x\" is not running\n\n", 2, 'VM "x" is not running'),
        ("", 1, "tart exited with code 1 and printed nothing"),
    ],
)
def test_error_message_is_tarts_last_line(stderr: str, code: int, message: str) -> None:
    assert error_message(stderr, code) == message
