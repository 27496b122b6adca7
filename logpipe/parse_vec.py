"""Shared pieces of the vectorized parse paths: line offsets, typed columns, timestamps.

Used by :mod:`logpipe.parse_arrow` (the byte-offset and RE2 paths, JSON) and
:mod:`logpipe.parse_csv` (the CSV-reader split of combined lines). Everything here
works on whole columns; nothing loops over lines in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from logpipe.parse_rules import BAD_STATUS, BAD_TIMESTAMP, MONTHS, OK
from logpipe.schema import DEFAULT_SERVICE

_MONTH_KEYS = np.array([(ord(m[0]) << 16) | (ord(m[1]) << 8) | ord(m[2]) for m in MONTHS])
_MONTH_ORDER = np.argsort(_MONTH_KEYS)
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
# "[DD/Mon/YYYY:HH:MM:SS +hhmm]": digit positions and fixed characters.
_TS_DIGITS = np.array([1, 2, 8, 9, 10, 11, 13, 14, 16, 17, 19, 20, 23, 24, 25, 26])
_TS_FIXED_AT = np.array([0, 3, 7, 12, 15, 18, 21, 27])
_TS_FIXED = np.frombuffer(b"[//::: ]", np.uint8)
PAD = 64  # > the widest fixed-width read (28 bytes) past any offset
NOT_DIGIT = np.ones(256, np.uint8)
NOT_DIGIT[ord("0") : ord("9") + 1] = 0


def line_bounds(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive, newline excluded) byte offsets of every line."""
    nl = np.flatnonzero(np.frombuffer(raw, np.uint8) == 10)
    n = len(nl) + (1 if raw[-1:] not in (b"", b"\n") else 0)
    starts = np.zeros(n, np.int64)
    starts[1:] = nl[: n - 1] + 1
    ends = np.full(n, len(raw), np.int64)
    ends[: len(nl)] = nl
    return starts, ends


class Lines:
    """A decoded batch with its line offsets; fields are cut out by byte ranges."""

    def __init__(self, raw: bytes, bounds: tuple[np.ndarray, np.ndarray]) -> None:
        self.n_bytes = len(raw)
        self.data = raw
        self.buf = pa.py_buffer(raw)
        self.a = np.frombuffer(raw, np.uint8)
        self.starts, self.ends = bounds

    @cached_property
    def padded(self) -> np.ndarray:
        """The bytes and ``PAD`` zeros, so fixed-width reads run past the end unchecked."""
        return np.frombuffer(self.data + bytes(PAD), np.uint8)

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

    def at(self, positions: np.ndarray) -> np.ndarray:
        """Sorted distinct indices of the lines holding byte offsets ``positions``."""
        return np.unique(np.searchsorted(self.starts, positions, side="right") - 1)

    def gather(self, pos: np.ndarray, width: int) -> np.ndarray:
        """(n, width) bytes from ``pos`` on (clipped into the buffer; callers mask)."""
        windows = np.lib.stride_tricks.sliding_window_view(self.padded, width)
        return windows[np.clip(pos, 0, self.n_bytes)]


@dataclass
class Part:
    """Rows of one line subset: codes for every line, a table for the parsed ones."""

    idx: np.ndarray
    codes: np.ndarray
    table: pa.Table


# ---- typed columns


def combined_finish(
    idx: np.ndarray,
    codes: np.ndarray,
    f: dict[str, pa.Array],
    status: np.ndarray,
    nbytes: np.ndarray,
    ts: np.ndarray,
) -> Part:
    """Typed columns for the grammar-valid rows; timestamp and status checks."""
    event_ms, ts_ok = apache_ms(ts)
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
        "service": service_or_default(f["service"]),
    }
    return Part(idx, codes, keep_rows(cols, late == OK))


def service_or_default(svc: pa.Array) -> pa.Array:
    missing = pc.or_kleene(pc.is_null(svc), pc.equal(svc, ""))
    return pc.if_else(missing, DEFAULT_SERVICE, svc)


def keep_rows(cols: dict[str, pa.Array], keep: np.ndarray) -> pa.Table:
    table = pa.table(cols)
    return table if keep.all() else table.filter(pa.array(keep))


def np_bool(arr: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def fixed(arr: pa.Array, width: int) -> np.ndarray:
    """The bytes of a string array whose values all have ``width`` bytes, as (n, width)."""
    n = len(arr)
    if n == 0:
        return np.empty((0, width), np.uint8)
    offs = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset : arr.offset + n + 1]
    data = np.frombuffer(arr.buffers()[2], np.uint8)[offs[0] : offs[-1]]
    return data.reshape(n, width)


# ---- timestamps


def civil_ms(
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


def ts_grammar(ts: np.ndarray) -> np.ndarray:
    """Which (n, 28) rows are ``[DD/Mon/YYYY:HH:MM:SS [+-]hhmm]`` by the grammar ``TS``."""
    digits = ts[:, _TS_DIGITS] - np.uint8(48)  # non-digits wrap to >= 10
    letters = ts[:, 4:7] | 0x20
    ok = np.all(digits < 10, axis=1) & np.all(ts[:, _TS_FIXED_AT] == _TS_FIXED, axis=1)
    ok &= np.all((letters >= ord("a")) & (letters <= ord("z")), axis=1)
    return ok & ((ts[:, 22] == ord("+")) | (ts[:, 22] == ord("-")))


def apache_ms(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``DD/Mon/YYYY:HH:MM:SS +hhmm`` rows (grammar-checked digits) to epoch ms.

    Logs are time-ordered, so most rows repeat the one before: each run of equal
    rows is converted once.
    """
    n = len(ts)
    if n > 1:
        head = np.empty(n, bool)
        head[0] = True
        np.any(ts[1:] != ts[:-1], axis=1, out=head[1:])
        if np.count_nonzero(head) * 2 < n:
            run = np.cumsum(head) - 1
            ms, ok = apache_ms_rows(ts[head])
            return ms[run], ok[run]
    return apache_ms_rows(ts)


def apache_ms_rows(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`apache_ms` of every row, without looking for runs."""
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
    ms, ok = civil_ms(num(7, 4), month, num(0, 2), num(12, 2), num(15, 2), num(18, 2), zero, off)
    return ms, ok & (om <= 59)
