"""Parse log batches into rows: a vectorized Arrow strategy and a naive per-line one.

Both strategies accept Apache/nginx *combined* lines, optionally extended with
``{request_time_s} {service}``, and JSON lines, mixed line by line. They share one
grammar (the patterns below: RE2 runs them anchored, Python ``re`` with
``fullmatch``) and one set of rejection rules, checked in this order::

    empty, too_long, nul_byte, bad_utf8, then per format:
    JSON:     bad_json, malformed (types, required fields), bad_timestamp, bad_status
    combined: malformed (no match), bad_timestamp, bad_status

so that for the same batch they produce the same rows, counts and dead letters.

``arrow`` never loops over lines in Python. Combined lines whose six quotes are
plain delimiters (no ``\\"`` escapes; nearly all real lines) are checked against
the grammar on byte offsets of quotes and spaces found with numpy, and every field
is copied out of the decoded buffer by one C++ ``take`` per column. Other combined
lines go through one RE2 extraction, JSON lines through ``pyarrow.json``
(bisecting down to per-line parsing when a block is malformed).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import ray

from logpipe import routing
from logpipe.batch import Batch, CorruptBatch, decode
from logpipe.schema import DEFAULT_SERVICE, PARSED_SCHEMA, empty_table

STRATEGIES = ("arrow", "regex")

# Rejection reasons; the index is the code used in per-line arrays (0 = parsed).
REASONS = (
    "",
    "empty",
    "too_long",
    "nul_byte",
    "bad_utf8",
    "bad_json",
    "malformed",
    "bad_timestamp",
    "bad_status",
)
OK, EMPTY, TOO_LONG, NUL_BYTE, BAD_UTF8, BAD_JSON, MALFORMED, BAD_TIMESTAMP, BAD_STATUS = range(9)

SAMPLE_CHARS = 200
# Combined lines with more than this many digits of bytes cannot fit int64.
_MAX_BYTES_DIGITS = 18
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# --------------------------------------------------------------------------- grammar

_TS = r"[0-9]{2}/[A-Za-z]{3}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}"
_QUOTED = r'(?:[^"\\]|\\.)*'
# Everything before the referer's opening quote (ends with a space).
_HEAD = (
    r'(?P<ip>[^ "]+) [^ "]+ (?P<user>[^ "]+) \[(?P<ts>' + _TS + r')\] "(?P<method>[^ "]+) '
    r'(?P<path>[^ "]+) (?P<protocol>[^ "]+)" (?P<status>[0-9]{3}) '
    r"(?P<bytes>[0-9]{1," + str(_MAX_BYTES_DIGITS) + r"}|-) "
)
# Everything after the user agent's closing quote; trailing CRs are dropped.
_TAIL = r'(?: (?P<rt>[0-9]{1,9}(?:\.[0-9]{1,9})?|-) (?P<service>[^ "\r]+))?\r*'
_COMBINED = _HEAD + rf'"(?P<referer>{_QUOTED})" "(?P<user_agent>{_QUOTED})"' + _TAIL
_ISO = (
    r"(?P<Y>[0-9]{4})-(?P<M>[0-9]{2})-(?P<D>[0-9]{2})[T ](?P<h>[0-9]{2}):(?P<m>[0-9]{2}):"
    r"(?P<s>[0-9]{2})(?:[.,](?P<frac>[0-9]{1,9}))?(?P<tz>Z|[+-][0-9]{2}:?[0-9]{2})?"
)
# A numeric, long hex or UUID path segment becomes "{id}". Each pass consumes the
# slash after a match, so a second pass catches consecutive id segments.
_ID = (
    r"[0-9]+|[0-9a-fA-F]{16,}|"
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_QUERY = r"(?s)\?.*"
_ID_RE2 = r"/(?:" + _ID + r")(/|$)"
_ID_PY = re.compile(r"/(?:" + _ID + r")(/|\Z)")
_QUERY_PY = re.compile(_QUERY)
_COMBINED_PY = re.compile(_COMBINED)
_ISO_PY = re.compile(_ISO)
_APACHE_TS_PY = re.compile(_TS)

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NO = {m: i + 1 for i, m in enumerate(_MONTHS)}
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

_STR_FIELDS = ("ip", "user", "time", "method", "path", "protocol", "referer", "user_agent")
_JSON_SCHEMA = pa.schema(
    [(name, pa.string()) for name in _STR_FIELDS]
    + [("status", pa.int64()), ("bytes", pa.int64()), ("request_time", pa.float64())]
    + [("service", pa.string())]
)
_JSON_REQUIRED = ("ip", "time", "method", "path", "status")
_JSON_DEFAULTS = {"user": "-", "protocol": "-", "referer": "-", "user_agent": "-"}

# --------------------------------------------------------------------------- API types


@dataclass(frozen=True)
class ParseOptions:
    """How batches are parsed.

    ``test_slowdown_us_per_line`` is a test-only knob: a busy-wait of that many
    microseconds per parsed line, used to validate that the harness sees a slower
    parser. Leave it at 0 for real measurements.
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
    """Accounting of one parsed batch: ``lines == parsed + rejected``, always."""

    batch_id: int
    lines: int
    parsed: int
    rejected: int
    reasons: dict[str, int] = field(default_factory=dict)
    dead_letters: tuple[DeadLetter, ...] = ()
    batch_error: str | None = None
    parse_s: float = 0.0


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
    empty: pa.Table | list[dict[str, Any]] = empty_table() if opts.strategy == "arrow" else []
    try:
        raw = decode(batch)
    except CorruptBatch as exc:
        return _whole_batch_rejected(meta.batch_id, meta.line_count, exc.reason, t0), empty
    bounds = _line_bounds(raw) if opts.strategy == "arrow" else None
    n_lines = len(bounds[0]) if bounds is not None else count_lines(raw)
    if n_lines != meta.line_count:
        reason = "line_count_mismatch"
        return _whole_batch_rejected(meta.batch_id, meta.line_count, reason, t0), empty
    if bounds is not None:
        codes, out = _parse_arrow(raw, bounds, opts.max_line_bytes)
        parsed = out.num_rows
    else:
        codes_list, records = _parse_regex(raw, opts.max_line_bytes)
        codes, out, parsed = np.asarray(codes_list, dtype=np.int8), records, len(records)
    if opts.test_slowdown_us_per_line > 0:
        _busy_wait(parsed * opts.test_slowdown_us_per_line * 1e-6)
    stats = _stats(meta.batch_id, raw, bounds, codes, parsed, opts.max_dead_letters, t0)
    return stats, out


def parse_and_route(
    batch: Batch, options: ParseOptions, sharding: str, n_shards: int
) -> tuple[Any, ...]:
    """Parse a batch and split it by shard: ``(ParseStats, out_0, ..., out_{n-1})``."""
    stats, out = parse_batch(batch, options)
    return (stats, *routing.split(out, sharding, n_shards, batch.meta.batch_id))


# Stateless and idempotent, so Ray's default task retries are safe.
parse_task = ray.remote(parse_and_route)


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
        starts, ends = bounds if bounds is not None else _line_bounds(raw)
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


def _busy_wait(seconds: float) -> None:
    # Spin rather than sleep: the knob models CPU cost, which must hold the core.
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


# --------------------------------------------------------------------------- shared rules


def _civil_ms_py(
    y: int, mo: int, d: int, h: int, mi: int, s: int, ms: int, off_min: int
) -> int | None:
    """Epoch ms of a civil UTC-offset time, or None when a field is out of range."""
    if not (0 <= h <= 23 and 0 <= mi <= 59 and 0 <= s <= 59 and abs(off_min) < 24 * 60):
        return None
    try:
        days = date(y, mo, d).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    return (((days * 24 + h) * 60 + mi) * 60 + s) * 1000 + ms - off_min * 60_000


def _apache_ms_py(ts: str) -> int | None:
    """``DD/Mon/YYYY:HH:MM:SS +hhmm`` (already matched by the grammar) to epoch ms."""
    month = _MONTH_NO.get(ts[3:6])
    oh, om = int(ts[22:24]), int(ts[24:26])
    if month is None or om > 59:
        return None
    off = (oh * 60 + om) * (-1 if ts[21] == "-" else 1)
    return _civil_ms_py(
        int(ts[7:11]), month, int(ts[0:2]), int(ts[12:14]), int(ts[15:17]), int(ts[18:20]), 0, off
    )


def _any_time_ms_py(text: str) -> int | None:
    """ISO 8601 (no offset means UTC) or Apache time to epoch ms."""
    m = _ISO_PY.fullmatch(text)
    if m is None:
        return _apache_ms_py(text) if _APACHE_TS_PY.fullmatch(text) else None
    ms = int((m["frac"] or "").ljust(3, "0")[:3])
    tz = (m["tz"] or "Z").replace(":", "")
    oh, om = (0, 0) if tz == "Z" else (int(tz[1:3]), int(tz[3:5]))
    if om > 59:
        return None
    off = (oh * 60 + om) * (-1 if tz[0] == "-" else 1)
    return _civil_ms_py(
        int(m["Y"]), int(m["M"]), int(m["D"]), int(m["h"]), int(m["m"]), int(m["s"]), ms, off
    )


def endpoint_of(path: str) -> str:
    """Templated endpoint: query string dropped, id-like segments -> ``{id}``."""
    p = _QUERY_PY.sub("", path)
    for _ in range(2):
        p = _ID_PY.sub(r"/{id}\1", p)
    return p


# --------------------------------------------------------------------------- regex strategy


def _parse_regex(raw: bytes, max_line_bytes: int) -> tuple[list[int], list[dict[str, Any]]]:
    """The naive design: one Python regex match (or ``json.loads``) per line."""
    lines = raw.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    codes: list[int] = []
    records: list[dict[str, Any]] = []
    for line in lines:
        code, rec = _parse_line(line, max_line_bytes)
        codes.append(code)
        if rec is not None:
            records.append(rec)
    return codes, records


def _parse_line(line: bytes, max_line_bytes: int) -> tuple[int, dict[str, Any] | None]:
    if not line:
        return EMPTY, None
    if len(line) > max_line_bytes:
        return TOO_LONG, None
    if b"\0" in line:
        return NUL_BYTE, None
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return BAD_UTF8, None
    if text.startswith("{"):
        code, raw_fields = _json_fields(text)
        return _json_record(raw_fields) if raw_fields is not None else (code, None)
    m = _COMBINED_PY.fullmatch(text)
    if m is None:
        return MALFORMED, None
    event_ms = _apache_ms_py(m["ts"])
    if event_ms is None:
        return BAD_TIMESTAMP, None
    status = int(m["status"])
    if not 100 <= status <= 599:
        return BAD_STATUS, None
    rt = m["rt"]
    rec = {
        "ip": m["ip"],
        "user": m["user"],
        "event_ms": event_ms,
        "method": m["method"],
        "path": m["path"],
        "protocol": m["protocol"],
        "status": status,
        "bytes": 0 if m["bytes"] == "-" else int(m["bytes"]),
        "referer": m["referer"],
        "user_agent": m["user_agent"],
        "latency_s": None if rt in (None, "-") else float(rt),
        "service": m["service"] or DEFAULT_SERVICE,
    }
    return OK, _enrich(rec)


def _enrich(rec: dict[str, Any]) -> dict[str, Any]:
    rec["endpoint"] = endpoint_of(rec["path"])
    rec["status_class"] = rec["status"] // 100
    return rec


def _json_fields(text: str) -> tuple[int, dict[str, Any] | None]:
    """Decode one JSON line into typed raw fields, with pyarrow.json's type rules."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return BAD_JSON, None
    if not isinstance(obj, dict):
        return MALFORMED, None
    out: dict[str, Any] = {}
    for name in (*_STR_FIELDS, "service"):
        v = obj.get(name)
        if v is not None and not isinstance(v, str):
            return MALFORMED, None
        if v is not None and not _encodable(v):
            return BAD_UTF8, None
        out[name] = v
    for name in ("status", "bytes"):
        v = obj.get(name)
        if v is not None and (type(v) is not int or not _INT64_MIN <= v <= _INT64_MAX):
            return MALFORMED, None
        out[name] = v
    rt = obj.get("request_time")
    if rt is not None:
        if type(rt) not in (int, float):
            return MALFORMED, None
        try:
            rt = float(rt)
        except OverflowError:
            return MALFORMED, None
    out["request_time"] = rt
    return OK, out


def _encodable(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from "\ud800" escapes
        return False
    return True


def _json_record(f: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    """Validate typed JSON fields and build a record (the scalar twin of _finish_json)."""
    rt, nbytes = f["request_time"], f["bytes"]
    if any(f[k] is None for k in _JSON_REQUIRED):
        return MALFORMED, None
    if (nbytes is not None and nbytes < 0) or (
        rt is not None and (not math.isfinite(rt) or rt < 0)
    ):
        return MALFORMED, None
    event_ms = _any_time_ms_py(f["time"])
    if event_ms is None:
        return BAD_TIMESTAMP, None
    if not 100 <= f["status"] <= 599:
        return BAD_STATUS, None
    rec = {
        "ip": f["ip"],
        "user": f["user"] if f["user"] is not None else "-",
        "event_ms": event_ms,
        "method": f["method"],
        "path": f["path"],
        "protocol": f["protocol"] if f["protocol"] is not None else "-",
        "status": f["status"],
        "bytes": nbytes or 0,
        "referer": f["referer"] if f["referer"] is not None else "-",
        "user_agent": f["user_agent"] if f["user_agent"] is not None else "-",
        "latency_s": rt,
        "service": f["service"] or DEFAULT_SERVICE,
    }
    return OK, _enrich(rec)


# --------------------------------------------------------------------------- arrow strategy

_COMBINED_RE2 = "^" + _COMBINED + "$"
_ISO_RE2 = "^" + _ISO + "$"
_APACHE_TS_RE2 = "^(?P<ts>" + _TS + ")$"
_MONTH_KEYS = np.array([(ord(m[0]) << 16) | (ord(m[1]) << 8) | ord(m[2]) for m in _MONTHS])
_MONTH_ORDER = np.argsort(_MONTH_KEYS)
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
# "[DD/Mon/YYYY:HH:MM:SS +hhmm]": digit positions and fixed characters.
_TS_DIGITS = np.array([1, 2, 8, 9, 10, 11, 13, 14, 16, 17, 19, 20, 23, 24, 25, 26])
_TS_FIXED_AT = np.array([0, 3, 7, 12, 15, 18, 21, 27])
_TS_FIXED = np.frombuffer(b"[//::: ]", np.uint8)
_POW10 = 10 ** np.arange(19, dtype=np.int64)
_PAD = 64  # > the widest fixed-width read (28 bytes) past any offset
_JSON_PARSE = pj.ParseOptions(explicit_schema=_JSON_SCHEMA, unexpected_field_behavior="ignore")
_JSON_FALLBACK_ROWS = 8  # bisect malformed JSON blocks down to this many lines
_SP, _QT, _CR, _BS = (ord(c) for c in ' "\r\\')


def _line_bounds(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive, newline excluded) byte offsets of every line."""
    nl = np.flatnonzero(np.frombuffer(raw, np.uint8) == 10)
    n = len(nl) + (1 if raw[-1:] not in (b"", b"\n") else 0)
    starts = np.zeros(n, np.int64)
    starts[1:] = nl[: n - 1] + 1
    ends = np.full(n, len(raw), np.int64)
    ends[: len(nl)] = nl
    return starts, ends


class _Lines:
    """A decoded batch with its line offsets; fields are cut out by byte ranges."""

    def __init__(self, raw: bytes, bounds: tuple[np.ndarray, np.ndarray]) -> None:
        self.n_bytes = len(raw)
        # Zero padding lets fixed-width reads run past the last line without checks.
        padded = raw + bytes(_PAD)
        self.buf = pa.py_buffer(padded)
        self.padded = np.frombuffer(padded, np.uint8)
        self.a = self.padded[: self.n_bytes]
        self.starts, self.ends = bounds

    def slices(self, bounds: np.ndarray) -> list[pa.Array]:
        """Compact string arrays of byte ranges: ``bounds`` is (rows, 2k) start/end pairs.

        Ranges must be in buffer order (each row's pairs ascending, rows ascending)
        and hold valid UTF-8. They become the even elements of one string array
        over the decoded buffer (odd elements are the gaps), so one C++ ``take``
        per field copies just its bytes: no Python loop, no per-field regex.
        """
        rows, k = bounds.shape[0], bounds.shape[1] // 2
        if rows == 0:
            return [pa.array([], pa.string()) for _ in range(k)]
        offsets = pa.py_buffer(bounds.astype(np.int32).reshape(-1))
        cut = pa.Array.from_buffers(pa.string(), rows * 2 * k - 1, [None, offsets, self.buf])
        return [cut.take(pa.array(np.arange(2 * j, rows * 2 * k, 2 * k))) for j in range(k)]

    def terminated(self, idx: np.ndarray) -> pa.BinaryArray:
        """Lines ``idx`` with their newlines, as one contiguous binary array."""
        offsets = np.append(self.starts, self.n_bytes).astype(np.int32)
        arr = pa.Array.from_buffers(
            pa.binary(), len(self.starts), [None, pa.py_buffer(offsets), self.buf]
        )
        return arr.take(pa.array(idx))

    def gather(self, pos: np.ndarray, width: int) -> np.ndarray:
        """(n, width) bytes from ``pos`` on (clipped into the buffer; callers mask)."""
        windows = np.lib.stride_tricks.sliding_window_view(self.padded, width)
        return windows[np.clip(pos, 0, self.n_bytes)]


@dataclass
class _Part:
    """Rows of one line subset: codes for every line, a table for the parsed ones."""

    idx: np.ndarray
    codes: np.ndarray
    table: pa.Table


def _parse_arrow(
    raw: bytes, bounds: tuple[np.ndarray, np.ndarray], max_line_bytes: int
) -> tuple[np.ndarray, pa.Table]:
    if len(raw) >= 2**31 - 16:
        # Int32 offsets cannot address it; far beyond any sane batch, so be slow, not wrong.
        codes_list, records = _parse_regex(raw, max_line_bytes)
        return np.asarray(codes_list, np.int8), pa.Table.from_pylist(records, PARSED_SCHEMA)
    lines = _Lines(raw, bounds)
    codes = _screen(lines, raw, max_line_bytes)
    ok = codes == OK
    first = lines.a[np.minimum(lines.starts, max(lines.n_bytes - 1, 0))] if len(raw) else ok
    is_json = ok & (first == ord("{"))
    parts: list[_Part] = []
    if is_json.any():
        parts.extend(_json_parts(lines, np.flatnonzero(is_json)))
    if (ok & ~is_json).any():
        parts.extend(_combined_parts(lines, np.flatnonzero(ok & ~is_json)))
    return codes, _assemble(parts, codes)


def _screen(lines: _Lines, raw: bytes, max_line_bytes: int) -> np.ndarray:
    """Per-line codes of the format-independent checks (empty, size, NUL, UTF-8)."""
    lens = lines.ends - lines.starts
    codes = np.where(lens == 0, EMPTY, np.where(lens > max_line_bytes, TOO_LONG, OK))
    codes = codes.astype(np.int8)
    a = lines.a
    if len(a) == 0:
        return codes
    if not a.all():
        hit = _lines_at(lines, np.flatnonzero(a == 0))
        codes[hit[codes[hit] == OK]] = NUL_BYTE
    if a.max() >= 0x80:
        hit = _lines_at(lines, np.flatnonzero(a >= 0x80))
        for i in hit[codes[hit] == OK].tolist():
            try:
                raw[lines.starts[i] : lines.ends[i]].decode("utf-8")
            except UnicodeDecodeError:
                codes[i] = BAD_UTF8
    return codes


def _lines_at(lines: _Lines, positions: np.ndarray) -> np.ndarray:
    return np.unique(np.searchsorted(lines.starts, positions, side="right") - 1)


def _assemble(parts: list[_Part], codes: np.ndarray) -> pa.Table:
    """Merge parts back into line order and add the derived columns."""
    for p in parts:
        codes[p.idx] = p.codes
    kept = [p for p in parts if p.table.num_rows]
    if not kept:
        return empty_table()
    table = pa.concat_tables([p.table for p in kept]).combine_chunks()
    if len(kept) > 1:
        order = np.argsort(np.concatenate([p.idx[p.codes == OK] for p in kept]), kind="stable")
        table = table.take(pa.array(order))
    path = table.column("path").combine_chunks()
    enc = pc.dictionary_encode(path)
    templ = pc.replace_substring_regex(enc.dictionary, _QUERY, "")
    for _ in range(2):
        templ = pc.replace_substring_regex(templ, _ID_RE2, r"/{id}\1")
    status = table.column("status").to_numpy()
    cols = {name: table.column(name) for name in table.column_names}
    cols["endpoint"] = templ.take(enc.indices)
    cols["status_class"] = pa.array((status // 100).astype(np.int8))
    return pa.Table.from_arrays([cols[n] for n in PARSED_SCHEMA.names], schema=PARSED_SCHEMA)


# ---- combined lines


def _combined_parts(lines: _Lines, idx: np.ndarray) -> list[_Part]:
    """Split combined lines into the quote-delimited fast path and the general one."""
    a, s, e = lines.a, lines.starts[idx], lines.ends[idx]
    q = np.flatnonzero(a == _QT)
    qs, qe = np.searchsorted(q, s), np.searchsorted(q, e)
    escaped = np.concatenate(([0], np.cumsum(a[np.maximum(q - 1, 0)] == _BS)))
    fast = (qe - qs == 6) & (escaped[qe] == escaped[qs])
    parts = []
    if fast.any():
        qq = q[qs[fast][:, None] + np.arange(6)]
        parts.append(_combined_fast(lines, idx[fast], qq))
    if not fast.all():
        parts.append(_combined_general(lines, idx[~fast]))
    return parts


def _positions(a: np.ndarray, byte: int, pad: int) -> np.ndarray:
    # Sentinels at the end keep fixed-stride lookups in range.
    return np.concatenate((np.flatnonzero(a == byte), np.full(pad, len(a))))


def _combined_fast(lines: _Lines, idx: np.ndarray, qq: np.ndarray) -> _Part:
    """Lines whose six quotes all delimit fields: the grammar checked on byte offsets.

    With the quotes known, the head (up to the referer) must hold exactly ten
    spaces and the tail (after the user agent) at most two, so every field is a
    byte range; numpy checks each range against the grammar, no regex needed.
    """
    sp = _positions(lines.a, _SP, 12)
    ok, ps, ts, status, nbytes = _head_ok(lines, lines.starts[idx], qq, sp)
    tail_ok, ext, rt_at, svc_at, svc_end = _tail_ok(lines, qq[:, 5] + 1, lines.ends[idx], sp)
    ok &= tail_ok & (qq[:, 4] == qq[:, 3] + 2) & (lines.a[qq[:, 3] + 1] == _SP)
    codes = np.where(ok, OK, MALFORMED).astype(np.int8)
    s, ps, qq, ext = lines.starts[idx][ok], ps[ok], qq[ok], ext[ok]
    after_ua = qq[:, 5] + 1
    bounds = np.column_stack(
        [
            s, ps[:, 0],  # ip
            ps[:, 1] + 1, ps[:, 2],  # user
            ps[:, 4] + 2, ps[:, 5],  # method (after the quote)
            ps[:, 5] + 1, ps[:, 6],  # path
            ps[:, 6] + 1, ps[:, 7] - 1,  # protocol (before the quote)
            qq[:, 2] + 1, qq[:, 3],  # referer
            qq[:, 4] + 1, qq[:, 5],  # user agent
            np.where(ext, rt_at[ok], after_ua), np.where(ext, svc_at[ok], after_ua),
            np.where(ext, svc_at[ok] + 1, after_ua), np.where(ext, svc_end[ok], after_ua),
        ]
    )  # fmt: skip
    names = ("ip", "user", "method", "path", "protocol", "referer", "user_agent", "rt", "service")
    fields = dict(zip(names, lines.slices(bounds)))
    return _combined_finish(idx, codes, fields, status[ok], nbytes[ok], ts[ok])


def _head_ok(
    lines: _Lines, s: np.ndarray, qq: np.ndarray, sp: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Grammar check of ``ip - user [ts] "m path proto" status bytes `` per line.

    Returns (ok, the ten space offsets, timestamp bytes, status, bytes).
    """
    ss = np.searchsorted(sp, s)
    ok = np.searchsorted(sp, qq[:, 2]) - ss == 10
    ps = sp[ss[:, None] + np.arange(10)]
    d = np.diff(ps, axis=1)
    ok &= (ps[:, 9] == qq[:, 2] - 1) & (ps[:, 0] > s) & (d[:, 0] > 1) & (d[:, 1] > 1)
    ok &= (d[:, 2] == 22) & (d[:, 3] == 7)  # "[DD/Mon/YYYY:HH:MM:SS" "+hhmm]"
    ok &= (d[:, 4] > 2) & (d[:, 5] > 1) & (d[:, 6] > 2) & (d[:, 7] == 4)
    ok &= (qq[:, 0] == ps[:, 4] + 1) & (qq[:, 1] == ps[:, 7] - 1)
    ts = lines.gather(ps[:, 2] + 1, 28)
    digits = ts[:, _TS_DIGITS] - np.uint8(48)
    letters = ts[:, 4:7] | 0x20
    ok &= np.all(digits < 10, axis=1) & np.all(ts[:, _TS_FIXED_AT] == _TS_FIXED, axis=1)
    ok &= np.all((letters >= ord("a")) & (letters <= ord("z")), axis=1)
    ok &= (ts[:, 22] == ord("+")) | (ts[:, 22] == ord("-"))
    status, status_ok = _digits(lines, ps[:, 8], np.full(len(s), 3), 3)
    blen = d[:, 8] - 1
    nbytes, bytes_ok = _digits(lines, ps[:, 9], blen, _MAX_BYTES_DIGITS)
    dash = (blen == 1) & (lines.padded[np.minimum(ps[:, 8] + 1, lines.n_bytes)] == ord("-"))
    ok &= status_ok & (bytes_ok | dash)
    return ok, ps, ts[:, 1:27], status, np.where(bytes_ok, nbytes, 0)


def _tail_ok(
    lines: _Lines, t0: np.ndarray, e: np.ndarray, sp: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Grammar check of the tail ``( rt service)?\\r*``.

    Returns (ok, has the extension, rt start, service's leading space, service end).
    """
    a = lines.a
    cr = _positions(a, _CR, 1)
    ci = np.searchsorted(cr, t0)
    body_end = np.minimum(cr[ci], e)  # first CR of the tail, or its end
    ok = np.searchsorted(cr, e) - ci == e - body_end  # nothing but CRs after it
    ext = body_end > t0
    si = np.searchsorted(sp, t0)
    svc_at = sp[si + 1]
    ext_ok = (sp[si] == t0) & (np.searchsorted(sp, body_end) - si == 2) & (body_end > svc_at + 1)
    rt_at = t0 + 1
    rlen = svc_at - rt_at
    w = int(np.clip(np.where(ext, rlen, 1).max(initial=1), 1, 19))
    r = lines.gather(rt_at, w)
    inside = np.arange(w) < rlen[:, None]
    isdot = (r == ord(".")) & inside
    ndots = isdot.sum(axis=1)
    dot = np.argmax(isdot, axis=1)
    chars_ok = np.all(((r >= 48) & (r <= 57)) | isdot | ~inside, axis=1)
    whole = (ndots == 0) & (rlen >= 1) & (rlen <= 9)
    frac = (ndots == 1) & (dot >= 1) & (dot <= 9) & (rlen - dot - 1 >= 1) & (rlen - dot - 1 <= 9)
    dash = (rlen == 1) & (r[:, 0] == ord("-"))
    ext_ok &= (chars_ok & (whole | frac)) | dash
    return ok & (~ext | ext_ok), ext, rt_at, svc_at, body_end


def _digits(lines: _Lines, end: np.ndarray, n: np.ndarray, width: int) -> tuple[np.ndarray, ...]:
    """Decimal value of the ``n`` bytes before ``end`` (1 <= n <= width) and validity."""
    w = int(np.clip(n.max(initial=1), 1, width))
    g = lines.gather(end - w, w) - np.uint8(48)  # non-digits wrap to >= 10
    inside = np.arange(w) >= (w - n)[:, None]
    ok = np.all((g < 10) | ~inside, axis=1) & (n >= 1) & (n <= width)
    return np.where(inside, g, 0).astype(np.int64) @ _POW10[w - 1 :: -1], ok


def _combined_general(lines: _Lines, idx: np.ndarray) -> _Part:
    """Lines with escaped or extra quotes: one full RE2 extraction per line."""
    (whole,) = lines.slices(np.column_stack([lines.starts[idx], lines.ends[idx]]))
    m = pc.extract_regex(whole, _COMBINED_RE2)
    ok = _np_bool(m.is_valid())
    codes = np.where(ok, OK, MALFORMED).astype(np.int8)
    sub = m.filter(pa.array(ok))
    f = {sub.type.field(i).name: arr for i, arr in enumerate(sub.flatten())}
    status = pc.cast(f.pop("status"), pa.int64()).to_numpy()
    nbytes = pc.cast(pc.if_else(pc.equal(f["bytes"], "-"), "0", f.pop("bytes")), pa.int64())
    ts = _fixed(f.pop("ts"), 26)
    return _combined_finish(idx, codes, f, status, nbytes.to_numpy(), ts)


def _combined_finish(
    idx: np.ndarray,
    codes: np.ndarray,
    f: dict[str, pa.Array],
    status: np.ndarray,
    nbytes: np.ndarray,
    ts: np.ndarray,
) -> _Part:
    """Typed columns for the grammar-valid rows; timestamp and status checks."""
    event_ms, ts_ok = _apache_ms(ts)
    late = np.where(
        ~ts_ok, BAD_TIMESTAMP, np.where((status < 100) | (status > 599), BAD_STATUS, OK)
    )
    codes[codes == OK] = late
    rt = f["rt"]
    no_rt = pc.or_kleene(pc.is_null(rt), pc.is_in(rt, pa.array(["", "-"])))
    cols = {
        "ip": f["ip"],
        "user": f["user"],
        "event_ms": pa.array(event_ms),
        "method": f["method"],
        "path": f["path"],
        "protocol": f["protocol"],
        "status": pa.array(status.astype(np.int16)),
        "bytes": pa.array(nbytes.astype(np.int64)),
        "referer": f["referer"],
        "user_agent": f["user_agent"],
        "latency_s": pc.cast(pc.if_else(no_rt, None, rt), pa.float64()),
        "service": _service(f["service"]),
    }
    return _Part(idx, codes, _keep(cols, late == OK))


def _service(svc: pa.Array) -> pa.Array:
    missing = pc.or_kleene(pc.is_null(svc), pc.equal(svc, ""))
    return pc.if_else(missing, DEFAULT_SERVICE, svc)


def _keep(cols: dict[str, pa.Array], keep: np.ndarray) -> pa.Table:
    table = pa.table(cols)
    return table if keep.all() else table.filter(pa.array(keep))


def _np_bool(arr: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def _fixed(arr: pa.Array, width: int) -> np.ndarray:
    """The bytes of a string array whose values all have ``width`` bytes, as (n, width)."""
    n = len(arr)
    if n == 0:
        return np.empty((0, width), np.uint8)
    offs = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset : arr.offset + n + 1]
    data = np.frombuffer(arr.buffers()[2], np.uint8)[offs[0] : offs[-1]]
    return data.reshape(n, width)


# ---- timestamps


def _civil_ms(
    y: np.ndarray, mo: np.ndarray, d: np.ndarray, h: np.ndarray, mi: np.ndarray,
    s: np.ndarray, ms: np.ndarray, off_min: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Vectorized twin of :func:`_civil_ms_py`: (epoch ms, valid)."""
    leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
    mo_c = np.clip(mo, 1, 12)
    dim = _DAYS_IN_MONTH[mo_c] + ((mo_c == 2) & leap)
    ok = (y >= 1) & (mo >= 1) & (mo <= 12) & (d >= 1) & (d <= dim)
    ok &= (h <= 23) & (mi <= 59) & (s <= 59) & (np.abs(off_min) < 24 * 60)
    # Days from civil (H. Hinnant), exact for the proleptic Gregorian calendar.
    yy = y - (mo_c <= 2)
    era = yy // 400
    yoe = yy - era * 400
    doy = (153 * ((mo_c + 9) % 12) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return (((days * 24 + h) * 60 + mi) * 60 + s) * 1000 + ms - off_min * 60_000, ok


def _apache_ms(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``DD/Mon/YYYY:HH:MM:SS +hhmm`` rows (grammar-checked digits) to epoch ms."""
    d = ts.astype(np.int64) - ord("0")

    def num(i: int, k: int) -> np.ndarray:
        out = d[:, i]
        for j in range(1, k):
            out = out * 10 + d[:, i + j]
        return out

    key = (ts[:, 3].astype(np.int64) << 16) | (ts[:, 4].astype(np.int64) << 8) | ts[:, 5]
    sorted_keys = _MONTH_KEYS[_MONTH_ORDER]
    pos = np.minimum(np.searchsorted(sorted_keys, key), 11)
    month = np.where(sorted_keys[pos] == key, _MONTH_ORDER[pos] + 1, 0)
    om = num(24, 2)
    off = (num(22, 2) * 60 + om) * np.where(ts[:, 21] == ord("-"), -1, 1)
    zero = np.zeros(len(ts), np.int64)
    ms, ok = _civil_ms(num(7, 4), month, num(0, 2), num(12, 2), num(15, 2), num(18, 2), zero, off)
    return ms, ok & (om <= 59)


def _any_time_ms(times: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """ISO 8601 or Apache time strings (nulls invalid) to (epoch ms, valid)."""
    n = len(times)
    ms, ok = np.zeros(n, np.int64), np.zeros(n, bool)
    m = pc.extract_regex(pc.fill_null(times, ""), _ISO_RE2)
    iso = _np_bool(m.is_valid())
    if iso.any():
        g = {m.type.field(i).name: a for i, a in enumerate(m.filter(pa.array(iso)).flatten())}

        def num(a: pa.Array) -> np.ndarray:
            return pc.cast(a, pa.int64()).to_numpy()

        frac = pc.utf8_rpad(pc.utf8_slice_codeunits(g["frac"], 0, 3), 3, "0")
        tz = pc.replace_substring(g["tz"], ":", "")
        tz = pc.if_else(pc.equal(pc.utf8_length(tz), 5), tz, "+0000")
        om = num(pc.utf8_slice_codeunits(tz, 3, 5))
        sign = np.where(_np_bool(pc.equal(pc.utf8_slice_codeunits(tz, 0, 1), "-")), -1, 1)
        off = (num(pc.utf8_slice_codeunits(tz, 1, 3)) * 60 + om) * sign
        y, mo, d, h, mi, sec = (num(g[k]) for k in ("Y", "M", "D", "h", "m", "s"))
        ms[iso], valid = _civil_ms(y, mo, d, h, mi, sec, num(frac), off)
        ok[iso] = valid & (om <= 59)
    rest = np.flatnonzero(~iso)
    if len(rest):
        ap = pc.extract_regex(pc.fill_null(times, "").take(pa.array(rest)), _APACHE_TS_RE2)
        hit = _np_bool(ap.is_valid())
        if hit.any():
            ts = _fixed(ap.filter(pa.array(hit)).flatten()[0], 26)
            ms[rest[hit]], ok[rest[hit]] = _apache_ms(ts)
    return ms, ok


# ---- JSON lines


def _json_parts(lines: _Lines, idx: np.ndarray) -> list[_Part]:
    """JSON lines: pyarrow.json on lines that end with ``}``, Python for the rest.

    A line that starts with ``{`` and ends with ``}`` cannot continue onto the next
    such line in valid JSON, so rows from one block map one-to-one to its lines.
    """
    clean = lines.a[lines.ends[idx] - 1] == ord("}")
    parts = []
    if clean.any():
        sub = idx[clean]
        table, codes = _read_json_rows(lines.terminated(sub))
        parts.append(_json_finish(sub, codes, table))
    if not clean.all():
        sub = idx[~clean]
        table, codes = _json_rows_py(lines.terminated(sub))
        parts.append(_json_finish(sub, codes, table))
    return parts


def _read_json_rows(arr: pa.BinaryArray) -> tuple[pa.Table, np.ndarray]:
    """Typed raw fields; a block that fails is bisected down to per-line parsing."""
    n = len(arr)
    offs = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset : arr.offset + n + 1]
    data = arr.buffers()[2][offs[0] : offs[-1]]
    opts = pj.ReadOptions(use_threads=False, block_size=max(len(data), 1 << 16) + 1)
    try:
        table = pj.read_json(pa.BufferReader(data), read_options=opts, parse_options=_JSON_PARSE)
        if table.num_rows == n:
            return table.select(_JSON_SCHEMA.names).cast(_JSON_SCHEMA), np.zeros(n, np.int8)
    except pa.ArrowInvalid:
        pass
    if n <= _JSON_FALLBACK_ROWS:
        return _json_rows_py(arr)
    half = n // 2
    (t1, c1), (t2, c2) = _read_json_rows(arr.slice(0, half)), _read_json_rows(arr.slice(half))
    return pa.concat_tables([t1, t2]).combine_chunks(), np.concatenate([c1, c2])


def _json_rows_py(arr: pa.BinaryArray) -> tuple[pa.Table, np.ndarray]:
    decoded = [_json_fields(b.decode("utf-8")) for b in arr.to_pylist()]
    rows = [f if f is not None else {} for _, f in decoded]
    codes = np.array([c for c, _ in decoded], np.int8)
    return pa.Table.from_pylist(rows, schema=_JSON_SCHEMA), codes


def _json_finish(idx: np.ndarray, codes: np.ndarray, t: pa.Table) -> _Part:
    """Vectorized twin of :func:`_json_record`."""
    col = {name: t.column(name).combine_chunks() for name in t.column_names}
    bad = np.zeros(len(idx), bool)
    for name in _JSON_REQUIRED:
        bad |= _np_bool(col[name].is_null())
    nbytes = pc.fill_null(col["bytes"], 0).to_numpy()
    rt = col["request_time"].to_numpy(zero_copy_only=False)
    rt_null = _np_bool(col["request_time"].is_null())
    with np.errstate(invalid="ignore"):
        bad |= nbytes < 0
        bad |= ~rt_null & ~(np.isfinite(rt) & (rt >= 0))
    codes = codes.copy()
    codes[(codes == OK) & bad] = MALFORMED
    event_ms, ts_ok = _any_time_ms(col["time"])
    codes[(codes == OK) & ~ts_ok] = BAD_TIMESTAMP
    st = pc.fill_null(col["status"], 0).to_numpy()
    codes[(codes == OK) & ((st < 100) | (st > 599))] = BAD_STATUS
    keep = codes == OK
    cols = {
        "ip": col["ip"],
        "user": col["user"],
        "event_ms": pa.array(event_ms),
        "method": col["method"],
        "path": col["path"],
        "protocol": col["protocol"],
        "status": pa.array(np.where(keep, st, 0).astype(np.int16)),
        "bytes": pc.fill_null(col["bytes"], 0),
        "referer": col["referer"],
        "user_agent": col["user_agent"],
        "latency_s": col["request_time"],
        "service": _service(col["service"]),
    }
    for name, default in _JSON_DEFAULTS.items():
        cols[name] = pc.fill_null(cols[name], default)
    return _Part(idx, codes, _keep(cols, keep))
