"""Which VM names may reach Tart: table-driven over the pure validators, and a property test
that the pattern /openapi.json publishes says exactly what ``name_problem`` decides."""

import itertools
import random
import re

import pytest

from vm_operator.api import ROUTES, openapi
from vm_operator.api.params import VM_NAME
from vm_operator.edge.routing import decode_segment
from vm_operator.tart.names import (
    MAX_NAME_LENGTH,
    NAME_PATTERN,
    InvalidName,
    name_problem,
    validate_name,
)

VALID = [
    "macos-ci",
    "a",
    "ghcr.io/cirruslabs/macos-sequoia-base:latest",
    "ghcr.io/org/img@sha256:" + "a" * 64,
    "runner_01.sonoma",
    "x" * 255,
    "a-",
    "a/-b",  # only the name's first character may not be '-'
    "...",
    ".hidden",
    "a/..b",
    "!~%?#&=+\\",  # printable ASCII, percent-encoded in the path
]

INVALID = [
    ("", "empty"),
    ("x" * 256, "longer"),
    ("-rf", "'-'"),
    ("--help", "'-'"),
    ("has space", "U+0020"),
    ("tab\there", "U+0009"),
    ("new\nline", "U+000A"),
    ("nul\x00", "U+0000"),
    ("del\x7f", "U+007F"),
    ("next\u0085line", "U+0085"),
    ("hts\u0088", "U+0088"),
    ("zero\u200bwidth", "U+200B"),
    ("bidi\u202eevil", "U+202E"),
    ("nbsp\u00a0x", "U+00A0"),
    ("private\ue000", "U+E000"),
    ("unassigned\u0378", "U+0378"),
    ("Ünïcödé-vm", "U+00DC"),  # names are ASCII: no look-alikes
    ("\u0430pple", "U+0430"),  # Cyrillic a
    ("e\u0301", "U+0301"),
    ("..", "'..'"),
    (".", "'.'"),
    ("../etc", "'..'"),
    ("a/../b", "'..'"),
    ("a/..", "'..'"),
    ("./a", "'.'"),
    ("/abs", "empty"),
    ("trailing/", "empty"),
    ("a//b", "empty"),
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
    with pytest.raises(ValueError):
        decode_segment(raw)


# --- the published schema and the validator agree -------------------------------------------


def published_name_schemas() -> list[dict[str, object]]:
    """The schema of the VM name path parameter (``name``, ``ref``: an image is named the same
    way) of every operation in /openapi.json."""
    schemas = []
    for item in openapi()["paths"].values():
        for operation in item.values():
            for param in operation.get("parameters", []):
                if param["in"] == "path" and param["name"] in ("name", "ref"):
                    schemas.append(param["schema"])
    return schemas


def schema_accepts(schema: dict[str, object], name: str) -> bool:
    """JSON Schema's reading: ECMA-262 ``$`` is the end of the string, which is what
    ``re.fullmatch`` means for an anchored pattern (``re.search``'s ``$`` would also match
    before a final newline)."""
    pattern = schema["pattern"]
    assert isinstance(pattern, str) and pattern.startswith("^") and pattern.endswith("$")
    min_length, max_length = schema["minLength"], schema["maxLength"]
    assert isinstance(min_length, int) and isinstance(max_length, int)
    return (schema["type"] == "string" and min_length <= len(name) <= max_length
            and re.fullmatch(pattern, name) is not None)


# Every character class the rules tell apart: plain, '-', '.', '/', both ends of printable
# ASCII, space, controls (C0, DEL, C1 such as NEL U+0085), format, non-ASCII letters,
# combining marks, private use, an unassigned code point and a lone surrogate.
SPECIAL = "a-./!~ \t\n\x00\x7f\u0085\u0088\u00a0\u00e9\u0301\u200b\u202e\ue000\u0378\ud800\U0001f600"
SMALL_ALPHABET = "a-./ \u0085"


def generated_names() -> list[str]:
    """Every string up to 5 characters over a small alphabet, then seeded random strings
    of every length up to past the limit over the wider one and over all of Unicode."""
    names = ["".join(chars) for n in range(6) for chars in itertools.product(SMALL_ALPHABET, repeat=n)]
    rng = random.Random(9)
    for _ in range(20000):
        length = rng.choice([rng.randint(0, 12), rng.randint(250, 260)])
        if rng.random() < 0.5:
            names.append("".join(rng.choice(SPECIAL) for _ in range(length)))
        else:
            names.append("".join(chr(rng.randint(0x21, 0x7e)) if rng.random() < 0.9
                                 else chr(rng.randint(0, 0x10FFFF)) for _ in range(length)))
    return names


def test_the_published_pattern_is_the_name_rules() -> None:
    schemas = published_name_schemas()
    declared = sum(param.type is VM_NAME for route in ROUTES for param in route.path)
    assert len(schemas) == declared >= 6
    for schema in schemas:
        assert schema["pattern"] == NAME_PATTERN
        assert schema["maxLength"] == MAX_NAME_LENGTH and schema["minLength"] == 1
    names = generated_names() + VALID + [name for name, _ in INVALID]
    disagree = [name for name in names
                if (name_problem(name) is None) != schema_accepts(schemas[0], name)]
    assert not disagree, [ascii(name) for name in disagree[:20]]
    # both answers occur, often: the comparison is not vacuous
    accepted = sum(name_problem(name) is None for name in names)
    assert 1000 < accepted < len(names) - 1000, accepted


def test_the_invalid_name_page_states_the_rule_the_names_module_applies() -> None:
    from vm_operator.edge.problems import PROBLEMS
    from vm_operator.tart.names import FIRST_CHAR, LAST_CHAR, NAME_RULE

    page = PROBLEMS["invalid-name"].meaning
    assert NAME_RULE in page, page  # word for word
    assert "normaliz" not in page and "format" not in page, page  # no rule it does not apply
    # and each claim of the rule is what name_problem does
    said = {f"1 to {MAX_NAME_LENGTH}", f"U+{ord(FIRST_CHAR):04X}", f"U+{ord(LAST_CHAR):04X}",
            "not starting with '-'", "no empty, '.' or '..' segment"}
    assert all(claim in NAME_RULE for claim in said), NAME_RULE
    assert name_problem("a" * MAX_NAME_LENGTH) is None
    assert name_problem("a" * (MAX_NAME_LENGTH + 1)) is not None
    assert name_problem("") is not None
    assert name_problem(FIRST_CHAR + LAST_CHAR) is None
    for outside in (chr(ord(FIRST_CHAR) - 1), chr(ord(LAST_CHAR) + 1), "\u00e9", "\u200b", "\t"):
        assert name_problem(f"a{outside}b") is not None, repr(outside)
    assert name_problem("-a") is not None and name_problem("a/-b") is None
    for segment in ("", ".", ".."):
        assert name_problem(f"a/{segment}/b") is not None, segment
