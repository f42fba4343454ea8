"""A token's digest is made in one place (``edge.token_file.digest_of``): the ``[[token]]``
entry ``vm-operator token new`` prints carries it, and the operator checks a presented token
against it."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from vm_operator import token_command
from vm_operator.edge.authz import Role
from vm_operator.edge.token_file import digest_of, parse_tokens

TOKEN = "a-token-whose-digest-is-made-once-0123456789"


def test_the_printed_entry_carries_the_operators_digest() -> None:
    text = token_command.entry("ci", TOKEN, [Role.READ], [])
    assert tomllib.loads(text)["token"][0]["sha256"] == digest_of(TOKEN).hex()
    assert [token.digest for token in parse_tokens(text)] == [digest_of(TOKEN)]


def test_the_token_command_hashes_nothing_itself() -> None:
    tree = ast.parse(Path(token_command.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    assert "hashlib" not in imported
