"""The ``arrow`` parse strategy: whole batches at once, no Python loop over lines.

Combined lines go first through Arrow's CSV reader (:mod:`logpipe.parse_csv`),
which splits nearly all real lines. The lines it does not take are checked here:
those whose six quotes are plain delimiters (no ``\\"`` escapes) against the
grammar on byte offsets found with numpy, fields copied out of the decoded buffer
by one C++ ``take`` per column; the others by one RE2 extraction. JSON lines go
through ``pyarrow.json`` (bisecting down to per-line parsing when a block is
malformed). Output, codes and dead letters match the ``regex`` strategy exactly.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from logpipe.parse_csv import csv_combined
from logpipe.parse_endpoints import endpoints
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
    NUL_BYTE,
    OK,
    TOO_LONG,
    TS,
    json_fields,
    parse_regex,
)
from logpipe.parse_vec import (
    Lines,
    Part,
    apache_ms,
    civil_ms,
    combined_finish,
    fixed,
    keep_rows,
    line_bounds,
    np_bool,
    service_or_default,
    ts_grammar,
)
from logpipe.schema import PARSED_SCHEMA, empty_table

__all__ = ["endpoints", "line_bounds", "parse_arrow"]

_COMBINED_RE2 = "^" + COMBINED + "$"
_ISO_RE2 = "^" + ISO + "$"
_APACHE_TS_RE2 = "^(?P<ts>" + TS + ")$"
_POW10 = 10 ** np.arange(19, dtype=np.int64)
_JSON_PARSE = pj.ParseOptions(explicit_schema=JSON_SCHEMA, unexpected_field_behavior="ignore")
_JSON_FALLBACK_ROWS = 8  # bisect malformed JSON blocks down to this many lines
_SP, _QT, _CR, _BS = (ord(c) for c in ' "\r\\')


def parse_arrow(
    raw: bytes, bounds: tuple[np.ndarray, np.ndarray], max_line_bytes: int, csv: bool = True
) -> tuple[np.ndarray, pa.Table]:
    """Per-line codes and the parsed table of one decoded batch.

    ``csv=False`` skips the CSV-reader split (:mod:`logpipe.parse_csv`), so that
    tests can hold the paths it falls back to against the same lines.
    """
    if len(raw) >= 2**31 - 16:
        # Int32 offsets cannot address it; far beyond any sane batch, so be slow, not wrong.
        codes_list, records = parse_regex(raw, max_line_bytes)
        return np.asarray(codes_list, np.int8), pa.Table.from_pylist(records, PARSED_SCHEMA)
    lines = Lines(raw, bounds)
    codes = _screen(lines, raw, max_line_bytes)
    ok = codes == OK
    first = lines.a[np.minimum(lines.starts, max(lines.n_bytes - 1, 0))] if len(raw) else ok
    is_json = ok & (first == ord("{"))
    parts: list[Part] = []
    if is_json.any():
        parts.extend(_json_parts(lines, np.flatnonzero(is_json)))
    if (ok & ~is_json).any():
        parts.extend(_combined_parts(lines, np.flatnonzero(ok & ~is_json), csv))
    return codes, _assemble(parts, codes)


def _screen(lines: Lines, raw: bytes, max_line_bytes: int) -> np.ndarray:
    """Per-line codes of the format-independent checks (empty, size, NUL, UTF-8)."""
    lens = lines.ends - lines.starts
    codes = np.where(lens == 0, EMPTY, np.where(lens > max_line_bytes, TOO_LONG, OK))
    codes = codes.astype(np.int8)
    a = lines.a
    if len(a) == 0:
        return codes
    if raw.find(b"\0") >= 0:
        hit = lines.at(np.flatnonzero(a == 0))
        codes[hit[codes[hit] == OK]] = NUL_BYTE
    if a.max() >= 0x80:
        hit = lines.at(np.flatnonzero(a >= 0x80))
        for i in hit[codes[hit] == OK].tolist():
            try:
                raw[lines.starts[i] : lines.ends[i]].decode("utf-8")
            except UnicodeDecodeError:
                codes[i] = BAD_UTF8
    return codes


def _assemble(parts: list[Part], codes: np.ndarray) -> pa.Table:
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


def _combined_parts(lines: Lines, idx: np.ndarray, csv: bool) -> list[Part]:
    """Combined lines: the CSV split, then quote-delimited byte offsets, then RE2."""
    parts: list[Part] = []
    if csv:
        parts, idx = csv_combined(lines, idx)
        if len(idx) == 0:
            return parts
    a, s, e = lines.a, lines.starts[idx], lines.ends[idx]
    q = np.flatnonzero(a == _QT)
    qs, qe = np.searchsorted(q, s), np.searchsorted(q, e)
    escaped = np.concatenate(([0], np.cumsum(a[np.maximum(q - 1, 0)] == _BS)))
    fast = (qe - qs == 6) & (escaped[qe] == escaped[qs])
    qq = q[qs[fast][:, None] + np.arange(6)]
    fits = (qq[:, 0] - 30 - s[fast] <= _MAX_PREFIX) & (qq[:, 1] - qq[:, 0] <= _MAX_REQUEST)
    fits &= e[fast] - qq[:, 5] <= _MAX_TAIL
    fast[fast] = fits
    if fast.any():
        parts.append(_combined_fast(lines, idx[fast], qq[fits]))
    if not fast.all():
        parts.append(_combined_general(lines, idx[~fast]))
    return parts


def _combined_fast(lines: Lines, idx: np.ndarray, qq: np.ndarray) -> Part:
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
    return combined_finish(idx, codes, fields, status[ok], nbytes[ok], ts[ok])


def _two_spaces(lines: Lines, start: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, ...]:
    """Offsets of the first and last space in ``[start, start + n)``; ok: exactly two."""
    w = int(np.clip(n.max(initial=1), 1, None))
    sp = (lines.gather(start, w) == _SP) & (np.arange(w) < n[:, None])
    first = sp.argmax(axis=1)
    last = w - 1 - sp[:, ::-1].argmax(axis=1)
    return np.count_nonzero(sp, axis=1) == 2, start + first, start + last


def _head_ok(lines: Lines, s: np.ndarray, qq: np.ndarray) -> tuple[np.ndarray, ...]:
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
    ok &= ts_grammar(ts)
    status, status_ok = _digits(lines, q1 + 5, np.full(len(s), 3), 3)
    blen = q2 - q1 - 7
    nbytes, bytes_ok = _digits(lines, q2 - 1, blen, MAX_BYTES_DIGITS)
    dash = (blen == 1) & (a[np.clip(q1 + 6, 0, lines.n_bytes)] == ord("-"))
    ok &= status_ok & (bytes_ok | dash)
    cuts = np.column_stack([sp0, sp1, ts_at - 1, sp3, sp4])
    return ok, cuts, ts[:, 1:27], status, np.where(bytes_ok, nbytes, 0)


def _tail_ok(lines: Lines, t0: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, ...]:
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


def _digits(lines: Lines, end: np.ndarray, n: np.ndarray, width: int) -> tuple[np.ndarray, ...]:
    """Decimal value of the ``n`` bytes before ``end`` (1 <= n <= width) and validity."""
    w = int(np.clip(n.max(initial=1), 1, width))
    g = lines.gather(end - w, w) - np.uint8(48)  # non-digits wrap to >= 10
    inside = np.arange(w) >= (w - n)[:, None]
    ok = np.all((g < 10) | ~inside, axis=1) & (n >= 1) & (n <= width)
    return np.where(inside, g, 0).astype(np.int64) @ _POW10[w - 1 :: -1], ok


def _combined_general(lines: Lines, idx: np.ndarray) -> Part:
    """Lines with escaped or extra quotes: one full RE2 extraction per line."""
    (whole,) = lines.slices(np.column_stack([lines.starts[idx], lines.ends[idx]]))
    m = pc.extract_regex(whole, _COMBINED_RE2)
    ok = np_bool(m.is_valid())
    codes = np.where(ok, OK, MALFORMED).astype(np.int8)
    sub = m.filter(pa.array(ok))
    f = {sub.type.field(i).name: arr for i, arr in enumerate(sub.flatten())}
    status = pc.cast(f.pop("status"), pa.int64()).to_numpy()
    nbytes = pc.cast(pc.if_else(pc.equal(f["bytes"], "-"), "0", f.pop("bytes")), pa.int64())
    ts = fixed(f.pop("ts"), 26)
    return combined_finish(idx, codes, f, status, nbytes.to_numpy(), ts)


def _any_time_ms(times: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """ISO 8601 or Apache time strings (nulls invalid) to (epoch ms, valid)."""
    n = len(times)
    ms, ok = np.zeros(n, np.int64), np.zeros(n, bool)
    m = pc.extract_regex(pc.fill_null(times, ""), _ISO_RE2)
    iso = np_bool(m.is_valid())
    if iso.any():
        g = {m.type.field(i).name: a for i, a in enumerate(m.filter(pa.array(iso)).flatten())}

        def num(a: pa.Array) -> np.ndarray:
            return pc.cast(a, pa.int64()).to_numpy()

        frac = pc.utf8_rpad(pc.utf8_slice_codeunits(g["frac"], 0, 3), 3, "0")
        tz = pc.replace_substring(g["tz"], ":", "")
        tz = pc.if_else(pc.equal(pc.utf8_length(tz), 5), tz, "+0000")
        om = num(pc.utf8_slice_codeunits(tz, 3, 5))
        sign = np.where(np_bool(pc.equal(pc.utf8_slice_codeunits(tz, 0, 1), "-")), -1, 1)
        off = (num(pc.utf8_slice_codeunits(tz, 1, 3)) * 60 + om) * sign
        y, mo, d, h, mi, sec = (num(g[k]) for k in ("Y", "M", "D", "h", "m", "s"))
        ms[iso], valid = civil_ms(y, mo, d, h, mi, sec, num(frac), off)
        ok[iso] = valid & (om <= 59)
    rest = np.flatnonzero(~iso)
    if len(rest):
        ap = pc.extract_regex(pc.fill_null(times, "").take(pa.array(rest)), _APACHE_TS_RE2)
        hit = np_bool(ap.is_valid())
        if hit.any():
            ts = fixed(ap.filter(pa.array(hit)).flatten()[0], 26)
            ms[rest[hit]], ok[rest[hit]] = apache_ms(ts)
    return ms, ok


# ---- JSON lines


def _json_parts(lines: Lines, idx: np.ndarray) -> list[Part]:
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


def _json_finish(idx: np.ndarray, codes: np.ndarray, t: pa.Table) -> Part:
    """Vectorized twin of :func:`_json_record`."""
    col = {name: t.column(name).combine_chunks() for name in t.column_names}
    bad = np.zeros(len(idx), bool)
    for name in JSON_REQUIRED:
        bad |= np_bool(col[name].is_null())
    nbytes = pc.fill_null(col["bytes"], 0).to_numpy()
    rt = col["request_time"].to_numpy(zero_copy_only=False)
    rt_null = np_bool(col["request_time"].is_null())
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
        "service": service_or_default(col["service"]),
    }
    for name, default in JSON_DEFAULTS.items():
        cols[name] = pc.fill_null(cols[name], default)
    return Part(idx, codes, keep_rows(cols, keep))
