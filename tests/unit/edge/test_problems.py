"""The catalogue of problem types (vm_operator/edge/problems/): complete, consistent, documented.

The catalogue is the one table of errors: every exception the core and the Tart adapter
define is answered by one of its entries, and every problem the edge builds itself names a
catalogued entry (mypy checks each ``ApiError``); these tests read those declarations.
"""

from __future__ import annotations

import html
import json
import re
from http import HTTPStatus

import pytest
from support import REPO_ROOT

from vm_operator.api.system import index_page, problem_page
from vm_operator.core import errors as core_errors
from vm_operator.core.errors import OperatorError, StateDirUnwritable, VmBusy, VmLimit
from vm_operator.edge.errors import ApiError, problem_for
from vm_operator.edge.problems import CATALOGUE, PROBLEMS, RAISED, ProblemType
from vm_operator.tart import errors as tart_errors
from vm_operator.tart.errors import (
    SshFailed,
    TartCommandError,
    TartError,
    TartHostUnreachable,
    TartUnavailable,
    command_error,
)

README = REPO_ROOT / "README.md"
SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def subclasses(base: type[Exception]) -> set[type[Exception]]:
    found = set()
    for sub in base.__subclasses__():
        found |= {sub} | subclasses(sub)
    return found


DOMAIN_ERRORS = sorted((subclasses(OperatorError) | subclasses(TartError) | {TartError}),
                       key=lambda kind: kind.__name__)


@pytest.mark.parametrize("kind", DOMAIN_ERRORS, ids=lambda kind: kind.__name__)
def test_every_exception_of_the_core_and_the_adapter_has_a_problem(kind: type[Exception]) -> None:
    assert kind.__module__ in (core_errors.__name__, tart_errors.__name__), kind
    mapped = [cls for cls in kind.__mro__ if cls in RAISED]
    assert mapped, f"{kind.__name__} is answered by no catalogue entry"


def test_each_exception_is_raised_by_one_entry_only() -> None:
    kinds = [kind for p in CATALOGUE for kind in p.kinds]
    assert len(kinds) == len(set(kinds))
    assert set(kinds) <= set(DOMAIN_ERRORS)


@pytest.mark.parametrize(
    ("exc", "status", "slug"),
    [
        (core_errors.vm_not_found("x"), 404, "vm-not-found"),
        (command_error('the specified VM "x" does not exist', 2), 404, "vm-not-found"),
        (core_errors.oci_image("x", "start"), 409, "oci-image"),
        (command_error("The number of VMs exceeds the system limit", 1), 409, "vm-limit"),
        (VmLimit("d", limit=2), 409, "vm-limit"),
        (VmBusy("d", retry_after=1), 503, "vm-busy"),
        (StateDirUnwritable("d", "/state"), 503, "state-dir-unwritable"),
        (core_errors.StartTimeout("d"), 504, "start-timeout"),
        (core_errors.RunEnded("d"), 502, "tart-failed"),
        (TartCommandError("boom", 1), 502, "tart-failed"),
        (TartError("printed no PID"), 502, "tart-failed"),
        (TartUnavailable("gone"), 503, "tart-unavailable"),
        (TartHostUnreachable("down"), 503, "tart-host-unreachable"),
        (SshFailed("odd"), 502, "ssh-failed"),
    ],
)
def test_the_most_specific_entry_answers(exc: OperatorError | TartError, status: int,
                                         slug: str) -> None:
    error = problem_for(exc)
    assert (error.status, error.slug) == (status, slug)
    assert error.detail == exc.detail


def test_typed_extras_become_members_and_headers() -> None:
    assert problem_for(VmLimit("d", limit=2)).extra == {"limit": 2}
    assert problem_for(StateDirUnwritable("d", "/s")).extra == {"state_dir": "/s"}
    assert problem_for(command_error("x", 3)).extra == {"tart_exit_code": 3}
    assert dict(problem_for(VmBusy("d", retry_after=1)).headers) == {"Retry-After": "1"}


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
        (lambda: problem_for(core_errors.vm_not_found("x")).response().body, 404,
         "vm-not-found"),
        (lambda: ApiError(PROBLEMS["not-running"], "d").response().body, 409, "not-running"),
        (lambda: ApiError(PROBLEMS["invalid-name"], "d").response().body, 400, "invalid-name"),
    ],
)
def test_documents_take_type_and_title_from_the_catalogue(make: object, status: int,
                                                          slug: str) -> None:
    body = make()  # type: ignore[operator]
    assert body.endswith(b"}\n")
    doc = json.loads(body)
    assert doc["type"] == f"/problems/{slug}" and doc["title"] == PROBLEMS[slug].title
    assert doc["status"] == status
