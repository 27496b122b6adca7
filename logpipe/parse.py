"""Parse log batches into rows: a vectorized Arrow strategy and a naive per-line one.

Both strategies accept Apache/nginx *combined* lines, optionally extended with
``{request_time_s} {service}``, and JSON lines, mixed line by line. They share one
grammar (:mod:`logpipe.parse_rules`) and one set of rejection rules, checked in
this order::

    empty, too_long, nul_byte, bad_utf8, then per format:
    JSON:     bad_json, malformed (types, required fields), bad_timestamp, bad_status
    combined: malformed (no match), bad_timestamp, bad_status

so that for the same batch they produce the same rows, counts and dead letters.
``regex`` applies the rules line by line; ``arrow`` (:mod:`logpipe.parse_arrow`)
never loops over lines in Python. This module is the entry point: options,
accounting, dead letters and the Ray task.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import ray

from logpipe import routing
from logpipe.batch import Batch, CorruptBatch, decode, make_batch
from logpipe.parse_arrow import line_bounds, parse_arrow
from logpipe.parse_rules import (
    REASONS,
    SAMPLE_CHARS,
    STRATEGIES,
    endpoint_of,
    parse_regex,
)
from logpipe.schema import empty_table
from logpipe.windows import AGGREGATED_COLUMNS

__all__ = [
    "REASONS",
    "STRATEGIES",
    "DeadLetter",
    "ParseOptions",
    "ParseStats",
    "count_lines",
    "endpoint_of",
    "escape_control",
    "output_buffer_bytes",
    "parse_and_route",
    "parse_batch",
    "parse_task",
]

# --------------------------------------------------------------------------- API types


@dataclass(frozen=True)
class ParseOptions:
    """How batches are parsed.

    ``test_slowdown_us_per_line`` is a test-only knob: that many microseconds of
    the parsing thread's CPU time spent spinning per parsed line, used to validate
    that the harness sees a slower parser. Leave it at 0 for real measurements.
    """

    strategy: str = "arrow"
    max_dead_letters: int = 20
    max_line_bytes: int = 64 * 1024
    test_slowdown_us_per_line: float = 0.0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"strategy: unknown strategy {self.strategy!r} "
                f"(expected one of {', '.join(STRATEGIES)})"
            )
        if self.max_dead_letters < 0:
            raise ValueError(f"max_dead_letters: must be >= 0 (got {self.max_dead_letters})")
        if self.max_line_bytes < 1:
            raise ValueError(f"max_line_bytes: must be >= 1 (got {self.max_line_bytes})")
        if not self.test_slowdown_us_per_line >= 0:
            raise ValueError(
                f"test_slowdown_us_per_line: must be >= 0 (got {self.test_slowdown_us_per_line})"
            )


@dataclass(frozen=True)
class DeadLetter:
    """A rejected line: 1-based ``line_no`` within the batch, escaped ``sample``."""

    batch_id: int
    line_no: int
    reason: str
    sample: str


@dataclass(frozen=True)
class ParseStats:
    """Accounting of one parsed batch: ``lines == parsed + rejected``, always.

    ``output_bytes`` is set by :func:`parse_and_route`: the Arrow buffer bytes of
    the outputs it hands to the shards (0 from :func:`parse_batch`, and 0 for the
    ``regex`` strategy's record lists, whose size is not computed).
    """

    batch_id: int
    lines: int
    parsed: int
    rejected: int
    reasons: dict[str, int] = field(default_factory=dict)
    dead_letters: tuple[DeadLetter, ...] = ()
    batch_error: str | None = None
    parse_s: float = 0.0
    output_bytes: int = 0


# --------------------------------------------------------------------------- entry points


def parse_batch(
    batch: Batch, options: ParseOptions | None = None
) -> tuple[ParseStats, pa.Table | list[dict[str, Any]]]:
    """Decode and parse one batch; returns its stats and the parsed rows.

    The rows are a ``PARSED_SCHEMA`` table for ``arrow`` and a list of dict records
    (same names and values) for ``regex``. A batch that cannot be decoded, or whose
    line count differs from ``meta.line_count``, is rejected whole.
    """
    opts = options or ParseOptions()
    t0 = time.perf_counter()
    meta = batch.meta
    try:
        raw = decode(batch)
    except CorruptBatch as exc:
        return _whole_batch_rejected(meta.batch_id, meta.line_count, exc.reason, t0), _empty(opts)
    bounds = line_bounds(raw) if opts.strategy == "arrow" else None
    n_lines = len(bounds[0]) if bounds is not None else count_lines(raw)
    if n_lines != meta.line_count:
        reason = "line_count_mismatch"
        return _whole_batch_rejected(meta.batch_id, meta.line_count, reason, t0), _empty(opts)
    if bounds is not None:
        codes, out = parse_arrow(raw, bounds, opts.max_line_bytes)
        parsed = out.num_rows
    else:
        codes_list, records = parse_regex(raw, opts.max_line_bytes)
        codes, out, parsed = np.asarray(codes_list, dtype=np.int8), records, len(records)
    if opts.test_slowdown_us_per_line > 0:
        _spin_cpu(parsed * opts.test_slowdown_us_per_line * 1e-6)
    stats = _stats(meta.batch_id, raw, bounds, codes, parsed, opts.max_dead_letters, t0)
    return stats, out


def parse_and_route(
    batch: Batch,
    options: ParseOptions,
    sharding: str,
    n_shards: int,
    columns: tuple[str, ...] | None = AGGREGATED_COLUMNS,
) -> tuple[Any, ...]:
    """Parse a batch and split it by shard: ``(ParseStats, out_0, ..., out_{n-1})``.

    Arrow outputs keep only ``columns`` (by default what the shards aggregate;
    ``None`` keeps every parsed column). The ``regex`` strategy's records are the
    naive design and stay whole. ``stats.output_bytes`` sums the outputs' sizes
    (:func:`output_buffer_bytes`).
    """
    stats, out = parse_batch(batch, options)
    if columns is not None and isinstance(out, pa.Table):
        out = out.select(list(columns))
    outs = routing.split(out, sharding, n_shards, batch.meta.batch_id)
    stats = dataclasses.replace(stats, output_bytes=sum(output_buffer_bytes(o) for o in outs))
    return (stats, *outs)


def output_buffer_bytes(output: pa.Table | list[dict[str, Any]]) -> int:
    """Bytes one parsed output occupies as an object: its Arrow buffers; 0 for records.

    ``get_total_buffer_size``, not ``nbytes``: Ray pickles a table with its buffers
    out of band, whole, so a table whose columns are slices of larger buffers
    stores those buffers entirely; ``nbytes`` counts only the sliced ranges. (The
    routed outputs are compact ``take``s or the whole selected table, where the two
    agree to within a few bytes.) A list of records has no cheap honest size, so
    bounds built on this figure cover the ``arrow`` strategy only.
    """
    return int(output.get_total_buffer_size()) if isinstance(output, pa.Table) else 0


# Stateless and idempotent, so Ray's default task retries are safe.
parse_task = ray.remote(parse_and_route)

WARM_UP_LINE = b'127.0.0.1 - - [04/Dec/2026:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-"\n'


def warm_up_batch() -> Batch:
    """A one-line batch for :func:`parse_task` to parse before a measurement, so that
    its worker processes start and import (pyarrow's lazy pandas import included)
    before the clock does."""
    return make_batch(-1, WARM_UP_LINE, 1, 1_796_342_400_000, 1_796_342_400_000)


def count_lines(raw: bytes) -> int:
    """Newline-separated lines; a final unterminated non-empty chunk counts."""
    return raw.count(b"\n") + (1 if raw and raw[-1:] != b"\n" else 0)


def escape_control(s: str) -> str:
    """Make untrusted text safe for a terminal: control and bidi characters escaped."""
    return s.translate(_ESCAPES)


def _escape_table() -> dict[int, str]:
    table = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
    table.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"})
    for c in (0x061C, 0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F)):
        table[c] = f"\\u{c:04x}"
    for c in range(0x2066, 0x206A):
        table[c] = f"\\u{c:04x}"
    return table


_ESCAPES = _escape_table()


def _sample(line: bytes) -> str:
    # 4 bytes per char at most: decode only what the sample can show.
    text = line[: SAMPLE_CHARS * 4].decode("utf-8", errors="backslashreplace")
    return escape_control(text[:SAMPLE_CHARS])


def _empty(opts: ParseOptions) -> pa.Table | list[dict[str, Any]]:
    # Built only when a batch is rejected whole: an empty 14-column table is not free.
    return empty_table() if opts.strategy == "arrow" else []


def _whole_batch_rejected(batch_id: int, line_count: int, reason: str, t0: float) -> ParseStats:
    reasons = {reason: line_count} if line_count else {}
    return ParseStats(
        batch_id=batch_id,
        lines=line_count,
        parsed=0,
        rejected=line_count,
        reasons=reasons,
        batch_error=reason,
        parse_s=time.perf_counter() - t0,
    )


def _stats(
    batch_id: int,
    raw: bytes,
    bounds: tuple[np.ndarray, np.ndarray] | None,
    codes: np.ndarray,
    parsed: int,
    max_dead: int,
    t0: float,
) -> ParseStats:
    counts = np.bincount(codes, minlength=len(REASONS))
    reasons = {REASONS[c]: int(counts[c]) for c in range(1, len(REASONS)) if counts[c]}
    dead: list[DeadLetter] = []
    bad = np.flatnonzero(codes)[:max_dead]
    if len(bad):
        starts, ends = bounds if bounds is not None else line_bounds(raw)
        for i in bad.tolist():
            line = raw[starts[i] : ends[i]]
            dead.append(DeadLetter(batch_id, i + 1, REASONS[codes[i]], _sample(line)))
    rejected = int(len(codes) - parsed)
    return ParseStats(
        batch_id=batch_id,
        lines=len(codes),
        parsed=parsed,
        rejected=rejected,
        reasons=reasons,
        dead_letters=tuple(dead),
        parse_s=time.perf_counter() - t0,
    )


def _spin_cpu(seconds: float) -> None:
    # Spin rather than sleep: the knob models CPU cost, which must hold the core. The
    # clock is the thread's CPU time, not the wall: a wall-clock spin that another
    # process preempts costs less CPU than its length, so on a loaded machine the
    # same knob slowed the pipeline by different amounts (docs/methodology.md).
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
