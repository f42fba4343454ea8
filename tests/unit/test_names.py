"""Which VM names may reach Tart: table-driven over the pure validators."""

import pytest

from vm_operator.names import InvalidName, decode_segment, name_problem, validate_name

VALID = [
    "macos-ci",
    "a",
    "ghcr.io/cirruslabs/macos-sequoia-base:latest",
    "ghcr.io/org/img@sha256:" + "a" * 64,
    "runner_01.sonoma",
    "Ünïcödé-vm",
    "x" * 255,
]

INVALID = [
    ("", "empty"),
    ("x" * 256, "longer"),
    ("-rf", "'-'"),
    ("--help", "'-'"),
    ("has space", "forbidden"),
    ("tab\there", "forbidden"),
    ("new\nline", "forbidden"),
    ("nul\x00", "forbidden"),
    ("del\x7f", "forbidden"),
    ("zero\u200bwidth", "forbidden"),
    ("bidi\u202eevil", "forbidden"),
    ("nbsp\u00a0x", "forbidden"),
    ("private\ue000", "forbidden"),
    ("e\u0301", "normalization"),  # decomposed é: looks like another name
    ("..", "'..'"),
    ("../etc", "'..'"),
    ("a/../b", "'..'"),
    ("./a", "'.'"),
    ("/abs", "empty"),
    ("trailing/", "empty"),
]


@pytest.mark.parametrize("name", VALID)
def test_valid_names_pass_unchanged(name: str) -> None:
    assert name_problem(name) is None
    assert validate_name(name) == name


@pytest.mark.parametrize(("name", "reason"), INVALID)
def test_invalid_names_are_refused_with_a_reason(name: str, reason: str) -> None:
    problem = name_problem(name)
    assert problem is not None and reason in problem
    with pytest.raises(InvalidName):
        validate_name(name)


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("macos-ci", "macos-ci"),
        ("ghcr.io%2Forg%2Fimg%3Atag", "ghcr.io/org/img:tag"),
        ("%C3%BC", "ü"),
        ("a%20b", "a b"),
        ("%2d", "-"),
    ],
)
def test_decode_segment(raw: str, decoded: str) -> None:
    assert decode_segment(raw) == decoded


@pytest.mark.parametrize("raw", ["%", "%2", "%zz", "a%g1", "%FF", "%C3", "%ED%A0%80"])
def test_decode_segment_is_strict(raw: str) -> None:
    with pytest.raises(InvalidName):
        decode_segment(raw)
