"""Request bodies are JSON objects within bounds (web/jsonbody.py): anything else is the
client's mistake, named, never an error of ours."""

from __future__ import annotations

import pytest

from web.jsonbody import MAX_DEPTH, JsonBodyError, parse_json_object


def test_a_flat_object_is_read() -> None:
    assert parse_json_object('{"to": "province", "note": "跨市事项"}'.encode()) == {
        "to": "province",
        "note": "跨市事项",
    }
    assert parse_json_object('{"to": "province"}'.encode("utf-16")) == {"to": "province"}  # JSON's own detection


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested more than"),  # was a RecursionError: HTTP 500
        (b'{"note": ' + b"[" * 900 + b"]" * 900 + b"}", "nested more than"),  # parses, then breaks repr()
        (b'{"note": ' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}", "nested more than"),
        (b'{"to": "dispatched", "note": "\\ud800"}', "not Unicode"),  # could not be stored in Redis
        (b'{"to": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b'{"to": "\xff"}', "not valid JSON"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"null", "must be a JSON object"),
    ],
)
def test_anything_else_is_a_named_client_error(raw: bytes, problem: str) -> None:
    with pytest.raises(JsonBodyError, match=problem):
        parse_json_object(raw)


def test_nesting_up_to_the_bound_is_fine() -> None:
    depth = MAX_DEPTH - 1  # the object itself is one level
    note = parse_json_object(b'{"note": ' + b"[" * depth + b"]" * depth + b"}")["note"]
    for _ in range(depth - 1):
        assert isinstance(note, list)
        (note,) = note
    assert note == []
