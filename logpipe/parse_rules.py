"""The log grammar and its per-line rules, shared by both parse strategies.

One grammar (RE2 runs the patterns anchored, Python ``re`` with ``fullmatch``),
one set of rejection codes and the scalar rules: timestamps, endpoint
templating, JSON field typing. The ``regex`` strategy is these rules applied
line by line; :mod:`logpipe.parse_arrow` is their vectorized twin.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date
from typing import Any

import pyarrow as pa

from logpipe.schema import DEFAULT_SERVICE

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
MAX_BYTES_DIGITS = 18
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# --------------------------------------------------------------------------- grammar

TS = r"[0-9]{2}/[A-Za-z]{3}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}"
_QUOTED = r'(?:[^"\\]|\\.)*'
# Everything before the referer's opening quote (ends with a space).
_HEAD = (
    r'(?P<ip>[^ "]+) [^ "]+ (?P<user>[^ "]+) \[(?P<ts>' + TS + r')\] "(?P<method>[^ "]+) '
    r'(?P<path>[^ "]+) (?P<protocol>[^ "]+)" (?P<status>[0-9]{3}) '
    r"(?P<bytes>[0-9]{1," + str(MAX_BYTES_DIGITS) + r"}|-) "
)
# Everything after the user agent's closing quote; trailing CRs are dropped.
_TAIL = r'(?: (?P<rt>[0-9]{1,9}(?:\.[0-9]{1,9})?|-) (?P<service>[^ "\r]+))?\r*'
COMBINED = _HEAD + rf'"(?P<referer>{_QUOTED})" "(?P<user_agent>{_QUOTED})"' + _TAIL
ISO = (
    r"(?P<Y>[0-9]{4})-(?P<M>[0-9]{2})-(?P<D>[0-9]{2})[T ](?P<h>[0-9]{2}):(?P<m>[0-9]{2}):"
    r"(?P<s>[0-9]{2})(?:[.,](?P<frac>[0-9]{1,9}))?(?P<tz>Z|[+-][0-9]{2}:?[0-9]{2})?"
)
# A numeric, long hex or UUID path segment becomes "{id}". Each pass consumes the
# slash after a match, so a second pass catches consecutive id segments.
_ID = (
    r"[0-9]+|[0-9a-fA-F]{16,}|"
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
QUERY = r"(?s)\?.*"
ID_RE2 = r"/(?:" + _ID + r")(/|$)"
_ID_PY = re.compile(r"/(?:" + _ID + r")(/|\Z)")
_QUERY_PY = re.compile(QUERY)
_COMBINED_PY = re.compile(COMBINED)
_ISO_PY = re.compile(ISO)
_APACHE_TS_PY = re.compile(TS)

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NO = {m: i + 1 for i, m in enumerate(MONTHS)}
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

_STR_FIELDS = ("ip", "user", "time", "method", "path", "protocol", "referer", "user_agent")
JSON_SCHEMA = pa.schema(
    [(name, pa.string()) for name in _STR_FIELDS]
    + [("status", pa.int64()), ("bytes", pa.int64()), ("request_time", pa.float64())]
    + [("service", pa.string())]
)
JSON_REQUIRED = ("ip", "time", "method", "path", "status")
JSON_DEFAULTS = {"user": "-", "protocol": "-", "referer": "-", "user_agent": "-"}

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


def parse_regex(raw: bytes, max_line_bytes: int) -> tuple[list[int], list[dict[str, Any]]]:
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
        code, raw_fields = json_fields(text)
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


def json_fields(text: str) -> tuple[int, dict[str, Any] | None]:
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
    if any(f[k] is None for k in JSON_REQUIRED):
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
