"""The tokens file (--tokens-file): what it accepts, and how it refuses a bad one whole,
naming the line and the key."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from vm_operator.edge.authz import Role
from vm_operator.edge.token_file import NamedTokens, TokensRefused, digest_of, parse_tokens

SHA_A = hashlib.sha256(b"token-of-ci-runner-0001").hexdigest()
SHA_B = hashlib.sha256(b"token-of-the-admin-0002").hexdigest()


def test_a_good_file_gives_each_token_its_roles_and_patterns() -> None:
    tokens = parse_tokens(f'''
[[token]]
name = "ci-runner"
sha256 = "{SHA_A}"
roles = ["read", "write"]
vms = ["ci-*", "build-?"]

[[token]]
name = "ops"
sha256 = "{SHA_B.upper()}"
roles = ["admin", "read"]
''')
    assert [(t.name, t.roles, t.vms) for t in tokens] == [
        ("ci-runner", frozenset({Role.READ, Role.WRITE}), ("ci-*", "build-?")),
        ("ops", frozenset({Role.ADMIN, Role.READ}), None),
    ]
    assert tokens[0].digest == digest_of("token-of-ci-runner-0001")
    assert tokens[1].digest == digest_of("token-of-the-admin-0002")


def test_an_empty_file_holds_no_token() -> None:
    assert parse_tokens("# nobody yet\n") == ()


GOOD = f'[[token]]\nname = "a"\nsha256 = "{SHA_A}"\nroles = ["read"]\n'

REFUSED = [
    # (text, line, key, words in the reason)
    ('[[token]\nname = "a"\n', 1, None, "not valid TOML"),
    (GOOD + 'colour = "red"\n', 5, "token[0].colour", "unknown key"),
    ('other = 1\n' + GOOD, None, "other", "unknown key"),
    (GOOD.replace('roles = ["read"]', 'roles = ["rwite"]'), 4, "token[0].roles", "unknown role 'rwite'"),
    (GOOD.replace('roles = ["read"]', 'roles = []'), 4, "token[0].roles", "non-empty list"),
    (GOOD.replace('roles = ["read"]', 'roles = "read"'), 4, "token[0].roles", "non-empty list"),
    (GOOD.replace(SHA_A, "secret-token-value"), 3, "token[0].sha256", "64 hex digits"),
    (GOOD.replace('name = "a"', 'name = "has space"'), 2, "token[0].name", "letters"),
    (GOOD.replace('name = "a"', 'name = "token"'), 2, "token[0].name", "reserved"),
    (GOOD.replace('name = "a"\n', ''), 1, "token[0].name", "has no name"),
    (GOOD + 'vms = []\n', 5, "token[0].vms", "shell patterns"),
    (GOOD + GOOD.replace(SHA_A, SHA_B), 6, "token[1].name", "given twice"),
    (GOOD + GOOD.replace('"a"', '"b"'), 7, "token[1].sha256", "given twice"),
    ('token = 3\n', None, "token", "[[token]] entries"),
]


@pytest.mark.parametrize(("text", "line", "key", "reason"), REFUSED,
                         ids=[case[3] for case in REFUSED])
def test_a_bad_file_is_refused_naming_line_and_key(text: str, line: int | None, key: str | None,
                                                  reason: str) -> None:
    with pytest.raises(TokensRefused) as refused:
        parse_tokens(text)
    assert (refused.value.line, refused.value.key) == (line, key)
    assert reason in refused.value.reason


def test_a_refused_reload_leaves_the_tokens_in_force(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(GOOD)
    tokens = NamedTokens(str(path))
    assert tokens.reload() == 1
    path.write_text(GOOD.replace('"read"', '"reed"'))
    with pytest.raises(TokensRefused):
        tokens.reload()
    found = tokens.find("token-of-ci-runner-0001")
    assert found is not None and found.name == "a"
    path.write_text(GOOD.replace('"a"', '"renamed"'))
    tokens.reload()
    found = tokens.find("token-of-ci-runner-0001")
    assert found is not None and found.name == "renamed"


@pytest.mark.parametrize("presented", ["token-of-ci-runner-000", "token-of-ci-runner-00011",
                                       "", SHA_A])
def test_only_the_token_itself_matches(presented: str) -> None:
    assert NamedTokens("x", parse_tokens(GOOD)).find(presented) is None


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TokensRefused, match="cannot be read"):
        NamedTokens(str(tmp_path / "missing.toml")).reload()
