"""Parsed rows for aggregation tests: a hypothesis strategy and the table they make."""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

from logpipe.schema import PARSED_SCHEMA

# Nulls, empty strings and NaN latencies in every column the aggregation reads.
rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "ip": st.sampled_from(["10.0.0.1", "10.0.0.2", "", None]),
            "user": st.sampled_from(["alice", "bob", "carol", "-", "", None]),
            "event_ms": st.integers(-2_500, 6_500),
            "status": st.sampled_from([200, 204, 301, 400, 401, 403, 404, 500, 503, None]),
            "bytes": st.one_of(st.none(), st.integers(0, 10**6)),
            "latency_s": st.one_of(st.none(), st.floats(0.0, 30.0), st.just(math.nan)),
            "service": st.sampled_from(["api", "auth", "shop", None]),
            "endpoint": st.sampled_from(["/", "/users/{id}", "/cart", None]),
        }
    ),
    max_size=120,
)


def parsed_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows as the parser's Arrow output (``PARSED_SCHEMA``)."""
    return pa.Table.from_pylist(rows, schema=PARSED_SCHEMA)
