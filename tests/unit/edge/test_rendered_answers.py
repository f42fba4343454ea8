"""The reads' answers, kept with the data they were made from (``conditional.Rendered``): a read
whose data has not changed gets the same bytes and tag, a change always gets new ones."""

from __future__ import annotations

import json

import pytest

from vm_operator.edge.conditional import Rendered, conditional, entity_tag
from vm_operator.edge.http1 import Headers


def headers(**values: str) -> Headers:
    found = Headers()
    for name, value in values.items():
        found[name.replace("_", "-").lower()] = value
    return found


def test_the_same_data_gets_the_answer_made_the_first_time() -> None:
    rendered = Rendered()
    first = rendered.json("/vms/a", {"name": "a", "cpu": 2})
    again = rendered.json("/vms/a", {"name": "a", "cpu": 2})  # equal, not the same object
    assert again is first
    assert (first.status, json.loads(first.body)) == (200, {"name": "a", "cpu": 2})
    assert first.etag == entity_tag(first.body)


@pytest.mark.parametrize(("before", "after"), [
    ({"cpu": 2}, {"cpu": 3}),
    ({"ready": False}, {"ready": True}),
    ([{"name": "a"}], [{"name": "a"}, {"name": "b"}]),
    ({"spec": None}, {"spec": {"desired": "running"}}),
])
def test_changed_data_gets_new_bytes_and_a_new_tag(before: object, after: object) -> None:
    rendered = Rendered()
    old = rendered.json("/vms/a", before)
    new = rendered.json("/vms/a", after)
    assert json.loads(new.body) == after and new.etag == entity_tag(new.body) != old.etag
    assert rendered.json("/vms/a", before).body == old.body  # and back again


def test_the_key_only_decides_what_is_kept_never_what_is_answered() -> None:
    rendered = Rendered()
    rendered.json("k", {"caller": "ci"})
    other = rendered.json("k", {"caller": "admin"})
    assert json.loads(other.body) == {"caller": "admin"}
    assert rendered.json("j", {"caller": "ci"}).body == json.dumps(
        {"caller": "ci"}, separators=(",", ":")).encode() + b"\n"


def test_past_its_limit_it_forgets_and_still_answers_right() -> None:
    rendered = Rendered(limit=2)
    answers = [rendered.json(f"/vms/{n}", {"n": n}) for n in range(5)]
    assert [json.loads(a.body) for a in answers] == [{"n": n} for n in range(5)]
    assert len(rendered._kept) <= 2


def test_a_tag_made_with_the_answer_is_the_one_compared() -> None:
    answer = Rendered().json("/vms", [])
    assert answer.etag is not None
    assert conditional(answer, headers(if_none_match=answer.etag)).status == 304
    tagged = conditional(answer, headers())
    assert (tagged.status, dict(tagged.headers)["ETag"]) == (200, answer.etag)


def test_the_304_of_a_kept_answer_is_made_once_and_stands_for_it() -> None:
    answer = Rendered().json("/vms", [{"name": "a"}])
    assert answer.etag is not None
    first = conditional(answer, headers(if_none_match=answer.etag))
    weak = conditional(answer, headers(if_none_match=f'"x", W/{answer.etag}'))
    assert first is weak  # the same 304, however the client names the tag
    assert (first.status, first.body, dict(first.headers)["ETag"]) == (304, b"", answer.etag)
    assert b"Content-Length" not in first.header_lines
    assert conditional(answer, headers(if_none_match='"other"')) is answer
