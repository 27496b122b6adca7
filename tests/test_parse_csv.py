"""The CSV-reader split of combined lines against the paths it falls back to and ``regex``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_parse import UA, _mutate, combined, combined_lines, json_line, json_lines

from logpipe.batch import decode
from logpipe.parse_arrow import parse_arrow
from logpipe.parse_csv import csv_combined
from logpipe.parse_rules import REASONS, parse_regex
from logpipe.parse_vec import Lines, line_bounds
from logpipe.schema import PARSED_SCHEMA

HYPO = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _all_ways(raw: bytes, max_line_bytes: int = 64 * 1024) -> tuple[np.ndarray, pa.Table]:
    """Parse ``raw`` with and without the CSV split and with ``regex``; all must agree."""
    bounds = line_bounds(raw)
    codes, table = parse_arrow(raw, bounds, max_line_bytes)
    codes_old, table_old = parse_arrow(raw, bounds, max_line_bytes, csv=False)
    codes_re, records = parse_regex(raw, max_line_bytes)
    assert [REASONS[c] for c in codes] == [REASONS[c] for c in codes_re]
    assert codes.tolist() == codes_old.tolist()
    expected = pa.Table.from_pylist(records, schema=PARSED_SCHEMA)
    assert table.equals(expected), (table.to_pylist(), records)
    assert table_old.equals(expected)
    return codes, table


def _taken(raw: bytes) -> int:
    """How many lines the CSV split takes (parsed or rejected by timestamp or status)."""
    lines = Lines(raw, line_bounds(raw))
    parts, _ = csv_combined(lines, np.arange(len(lines.starts)))
    return sum(len(p.idx) for p in parts)


def _raw(lines: list[str | bytes], terminate: bool = True) -> bytes:
    parts = [x.encode() if isinstance(x, str) else x for x in lines]
    return b"\n".join(parts) + (b"\n" if terminate and parts else b"")


def test_plain_lines_are_all_taken_and_match() -> None:
    lines = [combined(user=f"u{i}", ext=f" 0.{i:03d} svc{i % 3}") for i in range(50)]
    raw = _raw(lines)
    assert _taken(raw) == 50
    _, table = _all_ways(raw)
    assert table.num_rows == 50
    assert table.column("user").to_pylist() == [f"u{i}" for i in range(50)]


def test_lines_without_extension_are_taken() -> None:
    raw = _raw([combined(ext="", nbytes="-", user="-")] * 5, terminate=False)
    assert _taken(raw) == 5
    _, table = _all_ways(raw)
    assert table.column("service").to_pylist() == ["default"] * 5
    assert table.column("latency_s").null_count == 5


# Lines the split must hand back (or reject exactly as regex does), each next to good lines.
TRICKY = [
    combined(ext="\r"),  # CR: a line end to the CSV reader
    combined(ext=" 0.1 svc\r\r"),
    combined(ua='with \\"escaped\\" quotes'),  # backslash escapes
    combined(ua="trailing backslash \\\\"),
    "\ufeff" + combined(),  # byte-order mark, which the reader drops
    combined(ip='a"b'),  # a quote inside an unquoted field
    combined(user='x"'),
    combined(referer='a" "b'),  # extra quoted field, same field count
    combined(request='GET /a"b HTTP/1.1'),
    combined(request="GET  /a HTTP/1.1"),  # empty method/path/protocol
    combined(request="GET /a HTTP/1.1 "),
    combined(request="GET/a HTTP/1.1"),
    combined(request="GET /a b HTTP/1.1"),
    combined(ip="", user="u"),
    combined(user="NA"),  # CSV null spellings stay text
    combined(user="null", referer="", ua=""),
    combined(ts="01/Jan/2026:00:00:01  +0000"),
    combined(ts="1/Jan/2026:00:00:01 +0000"),
    combined(ts="01/Jan/2026:00:00:01 +00000"),
    combined(ts="01/Jan/2026:00:00:01 0000"),
    combined(ts="30/Feb/2026:00:00:01 +0000"),
    combined(ts="01/Jan/2026:00:00:01 +0060"),
    combined(status="20"),
    combined(status="0x1"),
    combined(status="+99"),
    combined(status="099"),
    combined(nbytes="-5"),
    combined(nbytes="+5"),
    combined(nbytes="0x5"),
    combined(nbytes="--"),
    combined(nbytes=""),
    combined(nbytes="9" * 18),
    combined(nbytes="1" * 19),
    combined(ext=" - svc"),
    combined(ext=" 1e3 svc"),
    combined(ext=" .5 svc"),
    combined(ext=" 5. svc"),
    combined(ext=" 1234567890 svc"),
    combined(ext=" 1.1234567890 svc"),
    combined(ext=" 123456789.123456789 svc"),
    combined(ext=" -1 svc"),
    combined(ext=" 0.1 "),
    combined(ext="  0.1 svc"),
    combined(ext=" 0.1 svc "),
    combined(ext=" 0.1 svc extra"),
    combined(ext=" 0.1"),
    combined(ext=" "),
    combined(ext="x"),
    combined(ua="tab\there", user="t\tu"),
    combined(ua="café 東京"),
    combined(ext="", request="GET /a HTTP/1.1"),
    'a b c [01/Jan/2026:00:00:01 +0000] "GET / HTTP/1.1" 200 1 "r" "u',  # quote left open
    'a b c [01/Jan/2026:00:00:01 +0000] "GET / HTTP/1.1 200 1 "r" "u" 0.1 s',
    '"a" b c [01/Jan/2026:00:00:01 +0000] "GET / HTTP/1.1" 200 1 r "u" 0.1 s',
    json_line(),
    "",
    "just text",
]


@pytest.mark.parametrize("line", TRICKY)
@pytest.mark.parametrize("ext_first", [True, False])
def test_tricky_line_matches_regex(line: str, ext_first: bool) -> None:
    good = combined() if ext_first else combined(ext="")
    raw = _raw([good, line, good, good])
    _all_ways(raw)
    assert _taken(raw) >= 3  # the good lines still go through the split


def test_open_quote_cannot_shift_rows() -> None:
    # The reader would read the open quote on into the next lines.
    lines = [combined(), 'a b c [x] "GET', combined(), combined(), combined(ua="")]
    raw = _raw(lines)
    _, table = _all_ways(raw)
    assert table.num_rows == 4


def test_empty_and_tiny_inputs() -> None:
    for raw in (b"", b"\n", b"x", b'"', _raw([combined()], terminate=False)):
        _all_ways(raw)


def test_columns_with_no_bytes_at_all() -> None:
    # Found by hypothesis: every row's `bytes` field empty, so that column's data
    # buffer is empty; the dash check indexed into it.
    raw = _raw(
        [
            '0 - - [00/Jan/0001:00:00:00 +0000] "GET /users/12 HTTP/1.1" 000 - "" ""\r',
            '0 - - [00/Jan/0001:00:00:00 +0000] "GET / HTTP/1.1" 000  - "" "bad"quote" extra',
        ],
        terminate=False,
    )
    codes, table = _all_ways(raw)
    assert table.num_rows == 0
    assert len(codes) == 2


_line = st.one_of(
    combined_lines(),
    combined_lines().map(lambda s: s.replace(" ", "  ", 1)),
    st.builds(
        _mutate,
        combined_lines(),
        st.integers(0, 400),
        st.sampled_from(['"', " ", "\\", "\r", "é", "-", "0", "\t", "\ufeff", "[", "]"]),
    ),
    json_lines(),
)


@HYPO
@given(st.lists(_line, max_size=30), st.booleans())
def test_split_matches_fallback_and_regex(lines: list[str], terminate: bool) -> None:
    _all_ways(_raw(lines, terminate), max_line_bytes=300)


@pytest.mark.parametrize("json_fraction", [0.0, 0.3, 1.0])
def test_generator_batches_match_regex(json_fraction: float) -> None:
    gen = pytest.importorskip("logpipe.generate")
    config = gen.GeneratorConfig(seed=5, batch_lines=2000, json_fraction=json_fraction)
    stream = gen.generate(config, np.linspace(0, 30, 6000))
    for batch in stream.batches:
        raw = decode(batch)
        _, table = _all_ways(raw)
        assert table.num_rows == batch.meta.line_count
        if json_fraction == 0.0:
            assert _taken(raw) == batch.meta.line_count


def test_generator_lines_with_malformed_ones_mixed_in() -> None:
    gen = pytest.importorskip("logpipe.generate")
    config = gen.GeneratorConfig(seed=9, batch_lines=3000, json_fraction=0.1)
    raw = decode(gen.generate(config, np.linspace(0, 10, 3000)).batches[0])
    good = raw.split(b"\n")[:-1]
    rng = np.random.default_rng(0)
    bad: list[Any] = [t.encode() for t in TRICKY] + [b"\x00x", b"caf\xc3", UA.encode()]
    mixed = list(good)
    for i in rng.choice(len(good), 200, replace=False):
        mixed[i] = bad[i % len(bad)]
    codes, _ = _all_ways(b"\n".join(mixed) + b"\n")
    assert np.count_nonzero(codes) > 50
