"""The ``arrow`` parse strategy: whole batches at once, no Python loop over lines.

Combined lines whose six quotes are plain delimiters (no ``\\"`` escapes; nearly
all real lines) are checked against the grammar on byte offsets found with
numpy, and every field is copied out of the decoded buffer by one C++ ``take``
per column. Other combined lines go through one RE2 extraction, JSON lines
through ``pyarrow.json`` (bisecting down to per-line parsing when a block is
malformed). Output, codes and dead letters match the ``regex`` strategy exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from logpipe.parse_rules import (
    BAD_STATUS,
    BAD_TIMESTAMP,
    BAD_UTF8,
    COMBINED,
    EMPTY,
    ISO,
    JSON_DEFAULTS,
    JSON_REQUIRED,
    JSON_SCHEMA,
    MALFORMED,
    MAX_BYTES_DIGITS,
    MONTHS,
    NUL_BYTE,
    OK,
    TOO_LONG,
    TS,
    json_fields,
    parse_regex,
)
from logpipe.schema import DEFAULT_SERVICE, PARSED_SCHEMA, empty_table

_COMBINED_RE2 = "^" + COMBINED + "$"
_ISO_RE2 = "^" + ISO + "$"
_APACHE_TS_RE2 = "^(?P<ts>" + TS + ")$"
_MONTH_KEYS = np.array([(ord(m[0]) << 16) | (ord(m[1]) << 8) | ord(m[2]) for m in MONTHS])
_MONTH_ORDER = np.argsort(_MONTH_KEYS)
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
# "[DD/Mon/YYYY:HH:MM:SS +hhmm]": digit positions and fixed characters.
_TS_DIGITS = np.array([1, 2, 8, 9, 10, 11, 13, 14, 16, 17, 19, 20, 23, 24, 25, 26])
_TS_FIXED_AT = np.array([0, 3, 7, 12, 15, 18, 21, 27])
_TS_FIXED = np.frombuffer(b"[//::: ]", np.uint8)
_POW10 = 10 ** np.arange(19, dtype=np.int64)
_PAD = 64  # > the widest fixed-width read (28 bytes) past any offset
_JSON_PARSE = pj.ParseOptions(explicit_schema=JSON_SCHEMA, unexpected_field_behavior="ignore")
_JSON_FALLBACK_ROWS = 8  # bisect malformed JSON blocks down to this many lines
_SP, _QT, _CR, _BS = (ord(c) for c in ' "\r\\')


def line_bounds(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
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


def parse_arrow(
    raw: bytes, bounds: tuple[np.ndarray, np.ndarray], max_line_bytes: int
) -> tuple[np.ndarray, pa.Table]:
    if len(raw) >= 2**31 - 16:
        # Int32 offsets cannot address it; far beyond any sane batch, so be slow, not wrong.
        codes_list, records = parse_regex(raw, max_line_bytes)
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
    status = table.column("status").to_numpy()
    cols = {name: table.column(name) for name in table.column_names}
    cols["endpoint"] = endpoints(table.column("path").combine_chunks())
    cols["status_class"] = pa.array((status // 100).astype(np.int8))
    return pa.Table.from_arrays([cols[n] for n in PARSED_SCHEMA.names], schema=PARSED_SCHEMA)


# ---- combined lines


# Widest "ip ident user" prefix, "method path proto" request and tail that the
# matrix fast path reads; longer lines take the RE2 path (same grammar, slower).
_MAX_PREFIX, _MAX_REQUEST, _MAX_TAIL = 128, 256, 64


def _combined_parts(lines: _Lines, idx: np.ndarray) -> list[_Part]:
    """Split combined lines into the quote-delimited fast path and the general one."""
    a, s, e = lines.a, lines.starts[idx], lines.ends[idx]
    q = np.flatnonzero(a == _QT)
    qs, qe = np.searchsorted(q, s), np.searchsorted(q, e)
    escaped = np.concatenate(([0], np.cumsum(a[np.maximum(q - 1, 0)] == _BS)))
    fast = (qe - qs == 6) & (escaped[qe] == escaped[qs])
    qq = q[qs[fast][:, None] + np.arange(6)]
    fits = (qq[:, 0] - 30 - s[fast] <= _MAX_PREFIX) & (qq[:, 1] - qq[:, 0] <= _MAX_REQUEST)
    fits &= e[fast] - qq[:, 5] <= _MAX_TAIL
    fast[fast] = fits
    parts = []
    if fast.any():
        parts.append(_combined_fast(lines, idx[fast], qq[fits]))
    if not fast.all():
        parts.append(_combined_general(lines, idx[~fast]))
    return parts


def _combined_fast(lines: _Lines, idx: np.ndarray, qq: np.ndarray) -> _Part:
    """Lines whose six quotes all delimit fields: the grammar checked on byte offsets.

    The quotes pin everything but three short runs: ``ip ident user`` before the
    fixed-width timestamp, ``method path proto`` inside the request quotes and the
    tail after the user agent. Each run is read as a small (lines, width) byte
    matrix, so no scan of the whole buffer for spaces is needed.
    """
    s, e = lines.starts[idx], lines.ends[idx]
    ok, cuts, ts, status, nbytes = _head_ok(lines, s, qq)
    tail_ok, rt_s, rt_e, svc_s, svc_e = _tail_ok(lines, qq[:, 5] + 1, e)
    ok &= tail_ok & (qq[:, 4] == qq[:, 3] + 2) & (lines.a[qq[:, 3] + 1] == _SP)
    codes = np.where(ok, OK, MALFORMED).astype(np.int8)
    c, qq = cuts[ok], qq[ok]
    bounds = np.column_stack(
        [
            s[ok], c[:, 0],  # ip
            c[:, 1] + 1, c[:, 2],  # user
            qq[:, 0] + 1, c[:, 3],  # method
            c[:, 3] + 1, c[:, 4],  # path
            c[:, 4] + 1, qq[:, 1],  # protocol
            qq[:, 2] + 1, qq[:, 3],  # referer
            qq[:, 4] + 1, qq[:, 5],  # user agent
            rt_s[ok], rt_e[ok], svc_s[ok], svc_e[ok],
        ]
    )  # fmt: skip
    names = ("ip", "user", "method", "path", "protocol", "referer", "user_agent", "rt", "service")
    fields = dict(zip(names, lines.slices(bounds)))
    return _combined_finish(idx, codes, fields, status[ok], nbytes[ok], ts[ok])


def _two_spaces(lines: _Lines, start: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, ...]:
    """Offsets of the first and last space in ``[start, start + n)``; ok: exactly two."""
    w = int(np.clip(n.max(initial=1), 1, None))
    sp = (lines.gather(start, w) == _SP) & (np.arange(w) < n[:, None])
    first = sp.argmax(axis=1)
    last = w - 1 - sp[:, ::-1].argmax(axis=1)
    return np.count_nonzero(sp, axis=1) == 2, start + first, start + last


def _head_ok(lines: _Lines, s: np.ndarray, qq: np.ndarray) -> tuple[np.ndarray, ...]:
    """Grammar check of ``ip ident user [ts] "method path proto" status bytes `` per line.

    Returns (ok, the space offsets ending ip, ident, user, method, path; timestamp
    bytes; status; bytes).
    """
    a = lines.padded
    q0, q1, q2 = qq[:, 0], qq[:, 1], qq[:, 2]
    ts_at = q0 - 29  # "[DD/Mon/YYYY:HH:MM:SS +hhmm]" then a space before the quote
    pre_ok, sp0, sp1 = _two_spaces(lines, s, ts_at - 1 - s)
    req_ok, sp3, sp4 = _two_spaces(lines, q0 + 1, q1 - q0 - 1)
    ok = pre_ok & req_ok & (sp0 > s) & (sp1 > sp0 + 1) & (ts_at - 1 > sp1 + 1)
    ok &= (sp3 > q0 + 1) & (sp4 > sp3 + 1) & (q1 > sp4 + 1)
    ok &= (a[np.maximum(ts_at - 1, 0)] == _SP) & (a[q0 - 1] == _SP) & (a[q1 + 1] == _SP)
    ok &= (a[q1 + 5] == _SP) & (a[q2 - 1] == _SP)
    ts = lines.gather(ts_at, 28)
    digits = ts[:, _TS_DIGITS] - np.uint8(48)
    letters = ts[:, 4:7] | 0x20
    ok &= np.all(digits < 10, axis=1) & np.all(ts[:, _TS_FIXED_AT] == _TS_FIXED, axis=1)
    ok &= np.all((letters >= ord("a")) & (letters <= ord("z")), axis=1)
    ok &= (ts[:, 22] == ord("+")) | (ts[:, 22] == ord("-"))
    status, status_ok = _digits(lines, q1 + 5, np.full(len(s), 3), 3)
    blen = q2 - q1 - 7
    nbytes, bytes_ok = _digits(lines, q2 - 1, blen, MAX_BYTES_DIGITS)
    dash = (blen == 1) & (a[np.clip(q1 + 6, 0, lines.n_bytes)] == ord("-"))
    ok &= status_ok & (bytes_ok | dash)
    cuts = np.column_stack([sp0, sp1, ts_at - 1, sp3, sp4])
    return ok, cuts, ts[:, 1:27], status, np.where(bytes_ok, nbytes, 0)


def _tail_ok(lines: _Lines, t0: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, ...]:
    """Grammar check of the tail ``( rt service)?\\r*``.

    Returns (ok, rt start and end, service start and end); both ranges are empty
    at ``t0`` when the line has no extension.
    """
    n = e - t0
    w = int(np.clip(n.max(initial=1), 1, None))
    t = lines.gather(t0, w)
    col = np.arange(w)
    inside = col < n[:, None]
    cr = (t == _CR) & inside
    text = inside & ~cr
    body = np.where(text.any(axis=1), w - text[:, ::-1].argmax(axis=1), 0)  # CRs stripped
    ok = ~np.any(cr & (col < body[:, None]), axis=1)
    ext = body > 0
    sp = (t == _SP) & (col < body[:, None])
    last = w - 1 - sp[:, ::-1].argmax(axis=1)
    ext_ok = (t[:, 0] == _SP) & (np.count_nonzero(sp, axis=1) == 2) & (body > last + 1)
    rlen = last - 1
    rw = int(np.clip(np.where(ext, rlen, 1).max(initial=1), 1, 19))
    r = lines.gather(t0 + 1, rw)
    rin = np.arange(rw) < rlen[:, None]
    isdot = (r == ord(".")) & rin
    ndots = isdot.sum(axis=1)
    dot = np.argmax(isdot, axis=1)
    chars_ok = np.all(((r >= 48) & (r <= 57)) | isdot | ~rin, axis=1)
    whole = (ndots == 0) & (rlen >= 1) & (rlen <= 9)
    frac = (ndots == 1) & (dot >= 1) & (dot <= 9) & (rlen - dot - 1 >= 1) & (rlen - dot - 1 <= 9)
    dash = (rlen == 1) & (r[:, 0] == ord("-"))
    ext_ok &= (chars_ok & (whole | frac)) | dash
    at = np.where(ext, t0 + last, t0)
    return (
        ok & (~ext | ext_ok),
        np.where(ext, t0 + 1, t0),
        at,
        np.where(ext, at + 1, t0),
        t0 + np.where(ext, body, 0),
    )


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


# ---- endpoints

_NOT_DIGIT = np.ones(256, np.uint8)
_NOT_DIGIT[ord("0") : ord("9") + 1] = 0
_IS_HEX = _NOT_DIGIT == 0
_IS_HEX[[*range(ord("a"), ord("g")), *range(ord("A"), ord("G"))]] = True
_ID_TEXT = np.frombuffer(b"{id}", np.uint8)


def endpoints(paths: pa.Array) -> pa.Array:
    """Vectorized :func:`~logpipe.parse_rules.endpoint_of` over a string array."""
    return _endpoints_flat(paths) if len(paths) else paths


def _endpoints_flat(paths: pa.Array) -> pa.Array:
    """Every path's bytes in one flat array; ids and queries cut by byte counts.

    A segment (the bytes after a slash, up to the next slash or the query) is an
    id when all its bytes are digits, or >= 16 are all hex, or it is a UUID; the
    regex twin replaces exactly these (two passes catch consecutive ones).
    """
    n = len(paths)
    offs = np.frombuffer(paths.buffers()[1], np.int32)[paths.offset : paths.offset + n + 1]
    offs = offs.astype(np.int64) - offs[0]
    size = int(offs[-1])
    if size == 0:
        return paths
    first = int(np.frombuffer(paths.buffers()[1], np.int32)[paths.offset])
    data = np.frombuffer(paths.buffers()[2], np.uint8)[first : first + size]
    end = offs[1:].copy()  # end of each path without its query
    q = np.flatnonzero(data == ord("?"))
    if len(q):
        q_row = np.searchsorted(offs, q, side="right") - 1
        head = np.append(True, q_row[1:] != q_row[:-1])
        end[q_row[head]] = q[head]
    sl = np.flatnonzero(data == ord("/"))
    sl_row = np.searchsorted(offs, sl, side="right") - 1
    inside = sl < end[sl_row]
    sl, sl_row = sl[inside], sl_row[inside]
    same = np.append(sl_row[1:] == sl_row[:-1], False)
    seg_s = sl + 1
    seg_e = np.where(same, np.append(sl[1:], 0), end[sl_row])
    ids = _id_segments(data, seg_s, seg_e)
    s_id, e_id = seg_s[ids], seg_e[ids]
    drop_s, drop_e = np.concatenate([s_id, end]), np.concatenate([e_id, offs[1:]])
    edge = np.bincount(drop_s, minlength=size + 1) - np.bincount(drop_e, minlength=size + 1)
    count = (np.cumsum(edge[:-1]) == 0).astype(np.int8)  # bytes each input byte emits
    count[s_id] = len(_ID_TEXT)
    out = np.repeat(data, count)
    cum = np.concatenate([[0], np.cumsum(count, dtype=np.int64)])
    if len(s_id):
        out[cum[s_id][:, None] + np.arange(len(_ID_TEXT))] = _ID_TEXT
    offsets = cum[offs].astype(np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(out)])


def _id_segments(data: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Which byte ranges ``[s, e)`` of ``data`` are ids: digits, 16+ hex digits, a UUID."""
    n = e - s
    ids = n >= 1
    if not ids.any():
        return ids
    # reduceat over (start, end) pairs: even results are the segments, odd the gaps.
    not_digit = np.append(_NOT_DIGIT.take(data), np.uint8(0))
    ids &= np.maximum.reduceat(not_digit, np.column_stack([s, e]).reshape(-1))[::2] == 0
    long = np.flatnonzero((n >= 16) & ~ids)
    if len(long):
        w = int(n[long].max())
        g = data.take(np.minimum(s[long][:, None] + np.arange(w), len(data) - 1))
        inside = np.arange(w) < n[long][:, None]
        hexes = _IS_HEX.take(g) | ~inside
        dash = (g == ord("-")) & inside
        all_hex = hexes.all(axis=1)
        uuid = (n[long] == 36) & (hexes | dash).all(axis=1) & (dash.sum(axis=1) == 4)
        if uuid.any():
            uuid &= (g[:, [8, 13, 18, 23]] == ord("-")).all(axis=1)
        ids[long] = all_hex | uuid
    return ids


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
            return table.select(JSON_SCHEMA.names).cast(JSON_SCHEMA), np.zeros(n, np.int8)
    except pa.ArrowInvalid:
        pass
    if n <= _JSON_FALLBACK_ROWS:
        return _json_rows_py(arr)
    half = n // 2
    (t1, c1), (t2, c2) = _read_json_rows(arr.slice(0, half)), _read_json_rows(arr.slice(half))
    return pa.concat_tables([t1, t2]).combine_chunks(), np.concatenate([c1, c2])


def _json_rows_py(arr: pa.BinaryArray) -> tuple[pa.Table, np.ndarray]:
    decoded = [json_fields(b.decode("utf-8")) for b in arr.to_pylist()]
    rows = [f if f is not None else {} for _, f in decoded]
    codes = np.array([c for c, _ in decoded], np.int8)
    return pa.Table.from_pylist(rows, schema=JSON_SCHEMA), codes


def _json_finish(idx: np.ndarray, codes: np.ndarray, t: pa.Table) -> _Part:
    """Vectorized twin of :func:`_json_record`."""
    col = {name: t.column(name).combine_chunks() for name in t.column_names}
    bad = np.zeros(len(idx), bool)
    for name in JSON_REQUIRED:
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
    for name, default in JSON_DEFAULTS.items():
        cols[name] = pc.fill_null(cols[name], default)
    return _Part(idx, codes, _keep(cols, keep))
