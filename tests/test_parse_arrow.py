"""The vectorized parse internals against their scalar twins in parse_rules."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from logpipe.parse_endpoints import endpoints
from logpipe.parse_rules import endpoint_of

# Paths built from the pieces the id rule cares about: slashes, digits, hex runs,
# UUIDs, dashes, queries and plain text, in any order.
_PIECES = st.sampled_from(
    [
        "/", "/", "/", "1", "42", "007", "?", "?q=1/2", "a", "api", "-", "{id}", "é",
        "deadbeefdeadbeef", "DEADBEEF00112233", "0123456789abcdef0", "deadbeefdeadbee",
        "123e4567-e89b-12d3-a456-426614174000", "123e4567-e89b-12d3-a456-42661417400",
        "123e4567e-89b-12d3-a456-426614174000",
    ]
)  # fmt: skip
_PATHS = st.lists(_PIECES, max_size=12).map("".join)


@settings(max_examples=150, deadline=None)
@given(st.lists(_PATHS, max_size=20), st.integers(0, 3))
def test_endpoints_match_the_scalar_rule(paths: list[str], cut: int) -> None:
    arr = pa.array(paths, pa.string()).slice(min(cut, len(paths)))
    assert endpoints(arr).to_pylist() == [endpoint_of(p) for p in arr.to_pylist()]


def test_endpoints_examples() -> None:
    paths = ["/users/1/2/3/4/5", "/a/123?x=/9", "", "/", "123", "/x//7", "http://h/1/y"]
    got = endpoints(pa.array(paths)).to_pylist()
    assert got == [
        "/users/{id}/{id}/{id}/{id}/{id}",
        "/a/{id}",
        "",
        "/",
        "123",
        "/x//{id}",
        "http://h/{id}/y",
    ]
    assert got == [endpoint_of(p) for p in paths]
