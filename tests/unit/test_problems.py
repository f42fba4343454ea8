"""The catalogue of problem types (vm_operator/problems.py): complete, consistent, documented.

The scan reads the package's source for every problem the code can produce (the slug of each
``ApiError(...)``, ``problem(...)``, ``bad_request(...)``, ``TartTransportError(...)``, and the
(status, slug, title) tuples and {status: slug} tables the code maps through), and fails when
the catalogue lacks one, or gives it another status or title.
"""

from __future__ import annotations

import ast
import html
import json
import re
from http import HTTPStatus
from pathlib import Path

import pytest

from vm_operator.edge.errors import ApiError, bad_request
from vm_operator.edge.problems import CATALOGUE, PROBLEMS, ProblemType, index_page, problem_page
from vm_operator.edge.responses import problem

PACKAGE = Path(__file__).resolve().parents[2] / "vm_operator"
README = Path(__file__).resolve().parents[2] / "README.md"
SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# Calls whose arguments are (status, slug, title, ...) or, for bad_request, (slug, ...).
STATUS_FIRST = {"ApiError", "problem", "TartTransportError"}


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def _text(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _status(node: ast.expr | None) -> int | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and 100 <= node.value < 600:
        return node.value
    return None


def used_problems(source: str, path: str) -> list[tuple[str, int | None, str | None, str]]:
    """(slug, status or None, title or None, where) of every problem a module can produce."""
    found = []
    for node in ast.walk(ast.parse(source)):
        where = f"{path}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call):
            name, args = _name(node.func), node.args
            if name == "bad_request" and args and _text(args[0]):
                found.append((_text(args[0]) or "", 400, None, where))
            elif name in STATUS_FIRST and len(args) >= 2 and _text(args[1]):
                status = _status(args[0])
                title = _text(args[2]) if len(args) >= 3 else None
                found.append((_text(args[1]) or "", status, title, where))
        elif isinstance(node, ast.Tuple):  # (status, slug, title) in a mapping table
            items = node.elts
            for i in range(len(items) - 1):
                status, slug = _status(items[i]), _text(items[i + 1])
                if status is not None and slug is not None and SLUG.fullmatch(slug):
                    title = _text(items[i + 2]) if i + 2 < len(items) else None
                    found.append((slug, status, title, where))
        elif isinstance(node, ast.Dict):  # {status: slug}
            for key, value in zip(node.keys, node.values):
                status, slug = _status(key), _text(value)
                if status is not None and slug is not None and SLUG.fullmatch(slug):
                    found.append((slug, status, None, where))
    return found


def scan_package() -> list[tuple[str, int | None, str | None, str]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "problems.py":
            continue
        found += used_problems(path.read_text(), str(path.relative_to(PACKAGE)))
    return found


def test_every_problem_the_code_produces_is_catalogued_with_its_status_and_title() -> None:
    errors = []
    for slug, status, title, where in scan_package():
        known = PROBLEMS.get(slug)
        if known is None:
            errors.append(f"{where}: {slug!r} is not in vm_operator/problems.py")
            continue
        if status is not None and status != known.status:
            errors.append(f"{where}: {slug!r} with status {status}, catalogued {known.status}")
        if title is not None and title != known.title:
            errors.append(f"{where}: {slug!r} titled {title!r}, catalogued {known.title!r}")
    assert not errors, "\n".join(errors)


def test_the_scan_finds_what_the_code_uses() -> None:
    """Not vacuous: problems raised in each way are found (a call, a helper, a table)."""
    used = {slug for slug, *_ in scan_package()}
    assert {"vm-not-found", "invalid-name", "unauthorized", "tart-host-unreachable",
            "already-running", "uri-too-long", "overloaded", "vm-busy", "bad-query"} <= used
    assert len(used) >= 35, sorted(used)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('ApiError(409, "x-y", "T", "d")', [("x-y", 409, "T")]),
        ('raise bad_request("bad-thing", "d")', [("bad-thing", 400, None)]),
        ('problem(code, "malformed-request", phrase, detail)', [("malformed-request", None, None)]),
        ('TABLE = (("msg", 404, "vm-not-found", "No such VM"),)', [("vm-not-found", 404, "No such VM")]),
        ('SLUGS = {431: "headers-too-large"}', [("headers-too-large", 431, None)]),
        ('log({"event": "state-dir"}); x = (1, "not a status")', []),
    ],
)
def test_the_scanner(source: str, expected: list[tuple[str, int | None, str | None]]) -> None:
    assert [found[:3] for found in used_problems(source, "x.py")] == expected


def test_the_catalogue_is_well_formed() -> None:
    slugs = [p.slug for p in CATALOGUE]
    assert len(slugs) == len(set(slugs))
    for p in CATALOGUE:
        assert SLUG.fullmatch(p.slug), p.slug
        assert 400 <= p.status < 600 and HTTPStatus(p.status), p
        assert p.title and p.meaning and p.remedy, p
        assert p.uri == f"/problems/{p.slug}"
    # Problems other helpers raise: catalogued ahead of them.
    assert PROBLEMS["state-dir-unwritable"].status == 503
    assert PROBLEMS["not-suspendable"].status == 409


@pytest.mark.parametrize("p", CATALOGUE, ids=lambda p: p.slug)
def test_each_page_says_title_status_meaning_and_remedy(p: ProblemType) -> None:
    page = problem_page(p).decode()
    for text in (p.title, p.meaning, p.remedy):
        assert html.escape(text) in page
    assert f"HTTP status {p.status}" in page
    assert f'href="/problems/{p.slug}"' in index_page().decode()


def test_the_readme_lists_every_problem_type() -> None:
    text = README.read_text()
    section = text.split("\n## Problems\n", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `([a-z0-9-]+)` \| (\d{3}) \|", section, re.MULTILINE))
    assert rows == {p.slug: str(p.status) for p in CATALOGUE}


@pytest.mark.parametrize(
    ("make", "status", "slug"),
    [
        (lambda: problem(404, "vm-not-found", "ignored", "d").body, 404, "vm-not-found"),
        (lambda: ApiError(409, "not-running", "The VM is not running", "d").response().body, 409,
         "not-running"),
        (lambda: bad_request("invalid-name", "d").response().body, 400, "invalid-name"),
    ],
)
def test_documents_take_type_and_title_from_the_catalogue(make: object, status: int,
                                                          slug: str) -> None:
    body = make()  # type: ignore[operator]
    assert body.endswith(b"}\n")
    doc = json.loads(body)
    assert doc["type"] == f"/problems/{slug}" and doc["title"] == PROBLEMS[slug].title
    assert doc["status"] == status


def test_a_slug_outside_the_catalogue_is_about_blank() -> None:
    doc = json.loads(problem(418, "not-catalogued", "I'm a teapot", "d").body)
    assert doc["type"] == "about:blank" and doc["title"] == "I'm a teapot"
