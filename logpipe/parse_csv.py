"""Combined lines split by Arrow's CSV reader (space-delimited, ``"``-quoted).

The reader cuts a line into ``ip ident user [ts +tz] "request" status bytes
"referer" "user agent"`` plus ``rt service`` when the line has the extension, and
copies each field into its own column in C++: the costly part of parsing, done
without a Python loop and without a numpy pass per field.

The reader's idea of a line is not the grammar's, so nothing it returns is
trusted. A line is taken from it only when the field lengths put the line's
quotes exactly where the grammar has them, the line has no other quote, and every
field passes the grammar's check. Lines it would read differently (carriage
returns, which it treats as line ends; backslashes, which the grammar reads as
escapes; a leading byte-order mark, which it drops) are never given to it. Every
line not taken is returned to the caller, which parses it on the other paths;
rejection reasons are only ever given by those paths or by the timestamp and
status checks they share, so the codes cannot differ from the ``regex`` strategy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from logpipe.parse_rules import BAD_STATUS, BAD_TIMESTAMP, MAX_BYTES_DIGITS, OK
from logpipe.parse_vec import Lines, Part, apache_ms_rows, keep_rows, ts_grammar
from logpipe.schema import DEFAULT_SERVICE

_NAMES = tuple(f"f{i}" for i in range(12))  # 10 fields, 12 with ``rt service``
# Fields converted to columns. The timestamp's two halves and the status are fixed
# width and read from the line's bytes instead, which saves three column copies.
_READ = (0, 1, 2, 5, 7, 8, 9, 10, 11)
_QT, _SP = ord('"'), ord(" ")
_BOM0 = 0xEF  # first byte of a UTF-8 byte-order mark, which the reader would drop
_UNSAFE = (b"\r", b"\\")  # a line end to the reader; an escape to the grammar


@dataclass
class _Fed:
    """The lines given to the reader: their buffer and where each line sits in it."""

    idx: np.ndarray  # line numbers in the batch
    buf: pa.Buffer
    a: np.ndarray  # the buffer's bytes
    starts: np.ndarray
    lens: np.ndarray


def csv_combined(lines: Lines, idx: np.ndarray) -> tuple[list[Part], np.ndarray]:
    """Parse combined lines ``idx`` through the CSV reader where it is exact.

    Returns the parts it produced and the lines (a subset of ``idx``, sorted) that
    it did not take, for the caller's other paths.
    """
    ok = _safe(lines, idx)
    fed = _feed(lines, idx[ok])
    if fed is None:
        return [], idx
    last = fed.starts[0] + fed.lens[0] - 1
    ext = fed.lens[0] > 0 and fed.a[last] != _QT  # the column count, from the first line
    table, skipped = _read(fed.buf, 12 if ext else 10, len(fed.idx))
    if table is None:
        # Rows are not lines: a quote was left open. Keep lines whose quotes open and
        # close fields, which cannot leave one open, and read again.
        fed = _feed(lines, idx[ok & _plain_quotes(lines, idx)])
        if fed is None:
            return [], idx
        table, skipped = _read(fed.buf, 12 if ext else 10, len(fed.idx))
        if table is None:
            return [], idx
    rows = np.delete(np.arange(len(fed.idx)), skipped)  # fed lines the table's rows are
    fields = [f for f in _READ if f < (12 if ext else 10)]
    taken, part = _columns(fed, rows, {f: _column(table, j) for j, f in enumerate(fields)})
    left = np.ones(len(idx), bool)
    left[np.searchsorted(idx, fed.idx[rows[taken]])] = False
    return ([part] if part is not None else []), idx[left]


def _safe(lines: Lines, idx: np.ndarray) -> np.ndarray:
    """Lines the reader reads as the grammar does (no CR, backslash or byte-order mark)."""
    ok = lines.a[lines.starts[idx]] != _BOM0  # lines that passed screening are not empty
    for ch in _UNSAFE:
        if lines.data.find(ch, 0, lines.n_bytes) >= 0:
            ok &= ~np.isin(idx, lines.at(np.flatnonzero(lines.a == ch[0])))
    return ok


def _plain_quotes(lines: Lines, idx: np.ndarray) -> np.ndarray:
    """Lines with six quotes, each opening a field after a space or closing one before it."""
    q = np.flatnonzero(lines.a == _QT)
    s, e = lines.starts[idx], lines.ends[idx]
    first = np.searchsorted(q, s)
    ok = np.searchsorted(q, e) - first == 6
    qq = q[np.minimum(first[:, None] + np.arange(6), max(len(q) - 1, 0))] if len(q) else None
    if qq is None:
        return ok
    a = lines.padded
    before, after = a[np.maximum(qq - 1, 0)], a[qq + 1]
    ok &= (qq[:, 0] > s) & np.all(before[:, [0, 2, 4]] == _SP, axis=1)
    ok &= np.all(after[:, [1, 3]] == _SP, axis=1) & ((after[:, 5] == _SP) | (qq[:, 5] + 1 == e))
    return ok


def _feed(lines: Lines, fed: np.ndarray) -> _Fed | None:
    """The lines the reader sees: the decoded buffer itself when that is all of them."""
    if len(fed) == 0:
        return None
    lens = lines.ends[fed] - lines.starts[fed]
    if len(fed) == len(lines.starts):
        buf = lines.buf.slice(0, lines.n_bytes)
        return _Fed(fed, buf, lines.a, lines.starts, lens)
    arr = lines.terminated(fed)
    offs = np.frombuffer(arr.buffers()[1], np.int32)[: len(fed) + 1].astype(np.int64)
    buf = arr.buffers()[2].slice(int(offs[0]), int(offs[-1] - offs[0]))
    return _Fed(fed, buf, np.frombuffer(buf, np.uint8), offs[:-1] - offs[0], lens)


def _read(buf: pa.Buffer, k: int, n_lines: int) -> tuple[pa.Table | None, list[int]]:
    """Every field as binary; rows with another field count are skipped and listed."""
    skipped: list[int] = []

    def skip(row: pcsv.InvalidRow) -> str:
        skipped.append(-1 if row.number is None else row.number - 1)
        return "skip"

    names = list(_NAMES[:k])
    read = pcsv.ReadOptions(column_names=names, use_threads=False, block_size=buf.size + 1)
    include = [names[f] for f in _READ if f < k]
    parse = pcsv.ParseOptions(
        delimiter=" ",
        quote_char='"',
        double_quote=False,
        escape_char=False,
        newlines_in_values=False,
        ignore_empty_lines=False,
        invalid_row_handler=skip,
    )
    convert = pcsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.binary()),
        null_values=[],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        include_columns=include,
    )
    try:
        table = pcsv.read_csv(pa.BufferReader(buf), read, parse, convert)
    except pa.ArrowInvalid:
        return None, []
    # A quote left open swallows the next line: then rows are not lines, so give up.
    aligned = table.num_rows + len(skipped) == n_lines and all(0 <= r < n_lines for r in skipped)
    return (table if aligned else None), skipped


@dataclass
class _Col:
    """One binary column: the array, its offsets and the bytes they index."""

    arr: pa.Array
    offs: np.ndarray  # int32, n + 1 (the array's own, not copied)
    data: np.ndarray

    @property
    def lens(self) -> np.ndarray:
        return np.diff(self.offs)

    def text(self) -> pa.Array:
        """The same bytes as a string array (the lines were checked for UTF-8)."""
        a = self.arr
        return pa.Array.from_buffers(pa.string(), len(a), a.buffers(), offset=a.offset)


def _column(table: pa.Table, i: int) -> _Col:
    col = table.column(i)
    arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    offs = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset : arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    return _Col(arr, offs, np.frombuffer(data, np.uint8) if data else _NONE)


_NONE = np.zeros(0, np.uint8)


def _columns(fed: _Fed, rows: np.ndarray, c: dict[int, _Col]) -> tuple[np.ndarray, Part | None]:
    """Which table rows the grammar accepts, and their part (None when none is)."""
    g = _accept(fed, rows, c)
    sel = np.flatnonzero(g.ok)
    if len(sel) == 0:
        return g.ok, None
    event_ms, ts_ok = g.event_ms[sel], g.ts_ok[sel]
    status = g.status[sel].astype(np.int64) @ np.array([100, 10, 1])
    late = np.where(
        ~ts_ok, BAD_TIMESTAMP, np.where((status < 100) | (status > 599), BAD_STATUS, OK)
    )
    ext = 11 in c
    text = {name: c[i].text() for name, i in _TEXT.items() if i in c}
    if len(sel) < len(rows):
        text = {name: arr.take(pa.array(sel)) for name, arr in text.items()}
    if ext:
        rt = sel[g.rt_num[sel]]
        latency = _spread(_to_number(c[10], rt, pa.float64(), False), g.rt_num[sel])
    else:
        latency = pa.nulls(len(sel), pa.float64())
        text["service"] = pa.array(np.full(len(sel), DEFAULT_SERVICE, object), pa.string())
    cols = {
        "ip": text["ip"],
        "user": text["user"],
        "event_ms": pa.array(event_ms),
        **_request_fields(c[5], g.m1, g.m2, sel),
        "status": pa.array(status.astype(np.int16)),
        "bytes": _to_number(c[7], sel, pa.int64(), bool(np.any(c[7].lens[sel] == 1))),
        "referer": text["referer"],
        "user_agent": text["user_agent"],
        "latency_s": latency,
        "service": text["service"],
    }
    return g.ok, Part(fed.idx[rows[sel]], late.astype(np.int8), keep_rows(cols, late == OK))


_TEXT = {"ip": 0, "user": 2, "referer": 8, "user_agent": 9, "service": 11}


@dataclass
class _Checked:
    """The grammar's verdict per table row, with the bytes the typed columns need."""

    ok: np.ndarray
    event_ms: np.ndarray  # meaningful where ok
    ts_ok: np.ndarray  # the timestamp is a real time (checked after the grammar)
    status: np.ndarray  # (n, 3) digit values
    m1: np.ndarray  # request spaces (offsets in the request column)
    m2: np.ndarray
    rt_num: np.ndarray  # rt is a number (else "-"); all False without the extension


def _accept(fed: _Fed, rows: np.ndarray, c: dict[int, _Col]) -> _Checked:
    s = fed.starts[rows]
    ok, head, q1 = _layout(fed, rows, c)
    ts = _window(fed.a, s + head, 29)  # the timestamp and the space after it
    st = _window(fed.a, s + q1 + 1, 5)  # " 200 "
    ok &= (ts[:, 28] == _SP) & (st[:, 0] == _SP) & (st[:, 4] == _SP)
    status = st[:, 1:4] - np.uint8(48)  # non-digits wrap to >= 10
    first, run = _runs(ts[:, :28])
    heads = ts[first]
    event_ms, ts_ok = apache_ms_rows(heads[:, 1:27])
    ok &= np.all(status < 10, axis=1) & _bytes_ok(c[7]) & ts_grammar(heads[:, :28])[run]
    m1, m2, req_ok = _request(c[5])
    ok &= req_ok
    rt_num = np.zeros(len(rows), bool)
    if 10 in c:
        rt_num, rt_ok = _rt(c[10])
        ok &= rt_ok
    return _Checked(ok, event_ms[run], ts_ok[run], status, m1, m2, rt_num)


def _layout(fed: _Fed, rows: np.ndarray, c: dict[int, _Col]) -> tuple[np.ndarray, ...]:
    """Rows whose field lengths put the quotes where the grammar has them.

    Returns (ok, offsets within the line of the timestamp's ``[`` and of the
    request's closing quote). The timestamp (27 bytes, one space inside) and the
    status (3) are not read as columns: the caller checks their bytes, spaces
    around them included. With the line's only six quotes at these offsets and the
    lengths adding up to the line, every field is exactly the bytes the grammar's
    group would hold.
    """
    n_lens = {i: col.lens for i, col in c.items()}
    ln, s = fed.lens[rows], fed.starts[rows]
    head = n_lens[0] + n_lens[1] + n_lens[2] + 3
    q0 = head + 29
    q1 = q0 + n_lens[5] + 1
    q2 = q1 + n_lens[7] + 7  # '" 200 ' then the bytes and a space
    q3 = q2 + n_lens[8] + 1
    q5 = q3 + 2 + n_lens[9] + 1
    end = q5 + 1 + (n_lens[10] + n_lens[11] + 2 if 11 in c else 0)
    ok = end == ln
    for i in (0, 1, 2, 10, 11):
        if i in n_lens:
            ok &= n_lens[i] > 0
    quotes = np.column_stack([q0, q1, q2, q3, q3 + 2, q5]) + s[:, None]
    ok &= np.all(fed.a[np.clip(quotes, 0, max(len(fed.a) - 1, 0))] == _QT, axis=1)
    ok &= _six_quotes(fed, rows, ok)
    return ok, head, q1


def _six_quotes(fed: _Fed, rows: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Whether each row's line has no quote but the six checked ones."""
    total = np.count_nonzero(fed.a == _QT)
    if total == 6 * len(fed.idx) and len(rows) == len(fed.idx) and ok.all():
        return ok  # six checked in every fed line and no more in all of them
    q = np.flatnonzero(fed.a == _QT)
    s = fed.starts[rows]
    return np.searchsorted(q, s + fed.lens[rows]) - np.searchsorted(q, s) == 6


def _runs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of equal rows (logs are time-ordered: few runs): first rows, run of each row."""
    words = rows
    if rows.shape[1] % 4 == 0:  # compare four bytes at a time
        words = np.ascontiguousarray(rows).view(np.uint32)
    first = np.ones(len(rows), bool)
    np.any(words[1:] != words[:-1], axis=1, out=first[1:])
    return first, np.cumsum(first) - 1


def _window(a: np.ndarray, pos: np.ndarray, width: int) -> np.ndarray:
    """(n, width) bytes from ``pos`` on, positions clipped into ``a`` (callers mask)."""
    if len(a) < width:
        a = np.concatenate([a, np.zeros(width, np.uint8)])
    view = np.lib.stride_tricks.sliding_window_view(a, width)
    return view[np.clip(pos, 0, len(a) - width)]


def _nondigits(col: _Col) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Byte offsets of non-digits in ``col``, their rows, and a count per row."""
    lo, hi = int(col.offs[0]), int(col.offs[-1])
    at = np.flatnonzero((col.data[lo:hi] - np.uint8(48)) >= 10) + lo
    n = len(col.offs) - 1
    if len(at) == n and np.all((at >= col.offs[:-1]) & (at < col.offs[1:])):
        return at, np.arange(n), np.ones(n, np.int64)  # one in each row (a decimal point)
    row = np.searchsorted(col.offs, at, side="right") - 1
    return at, row, np.bincount(row, minlength=n)


def _bytes_ok(col: _Col) -> np.ndarray:
    """``[0-9]{1,18}|-`` per row."""
    lens = col.lens
    _, _, count = _nondigits(col)
    dash = (lens == 1) & (_first_byte(col) == 45)
    return ((count == 0) & (lens >= 1) & (lens <= MAX_BYTES_DIGITS)) | (dash & (count == 1))


def _first_byte(col: _Col) -> np.ndarray:
    """Each row's first byte (0 for an empty row; a column may hold no bytes at all)."""
    if len(col.data) == 0:
        return np.zeros(len(col.offs) - 1, np.uint8)
    first = col.data[np.minimum(col.offs[:-1], len(col.data) - 1)]
    return np.where(col.lens > 0, first, np.uint8(0))


def _rt(col: _Col) -> tuple[np.ndarray, np.ndarray]:
    """``[0-9]{1,9}(\\.[0-9]{1,9})?|-`` per row: (is a number, matches)."""
    lens = col.lens
    at, row, count = _nondigits(col)
    one = count[row] == 1
    r, ch, rel = row[one], col.data[at[one]], at[one] - col.offs[row[one]]
    frac = np.zeros(len(lens), bool)
    frac[r] = (ch == ord(".")) & (rel >= 1) & (rel <= 9) & (lens[r] - rel - 1 >= 1)
    frac[r] &= lens[r] - rel - 1 <= 9
    dash = np.zeros(len(lens), bool)
    dash[r] = (ch == ord("-")) & (lens[r] == 1)
    number = ((count == 0) & (lens >= 1) & (lens <= 9)) | frac
    return number, number | dash


def _request(col: _Col) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two spaces of ``method path protocol`` and whether the request has that form."""
    lo, hi = int(col.offs[0]), int(col.offs[-1])
    sp = np.flatnonzero(col.data[lo:hi] == _SP) + lo
    starts, ends = col.offs[:-1], col.offs[1:]
    if len(sp) == 2 * len(starts):  # two spaces a row, if each pair lies in its row
        m1, m2 = sp[0::2], sp[1::2]
        count = np.where((m1 >= starts) & (m2 < ends), 2, 0)
    elif len(sp) == 0:
        return starts, starts, np.zeros(len(starts), bool)
    else:
        first = np.searchsorted(sp, starts)
        count = np.searchsorted(sp, ends) - first
        m1 = sp[np.minimum(first, len(sp) - 1)]
        m2 = sp[np.minimum(first + 1, len(sp) - 1)]
    ok = (count == 2) & (m1 > starts) & (m2 > m1 + 1) & (ends > m2 + 1)
    return np.where(ok, m1, starts), np.where(ok, m2, starts), ok


def _request_fields(col: _Col, m1: np.ndarray, m2: np.ndarray, sel: np.ndarray) -> dict:
    """Method, path and protocol of rows ``sel``: one ``take`` each from the request bytes.

    The request column's bytes are cut at ``start, m1, m1 + 1, m2, m2 + 1`` into five
    elements per row (method, space, path, space, protocol). Rows that are not taken
    have m1 = m2 = start, so their cuts stay in order.
    """
    starts = col.offs[:-1]
    bad = m1 == starts
    cuts = np.column_stack([starts, m1, m1 + 1 - bad, m2, m2 + 1 - bad]).reshape(-1)
    offsets = np.append(cuts, col.offs[-1]).astype(np.int32)
    n = len(starts)
    cut = pa.Array.from_buffers(
        pa.string(), 5 * n, [None, pa.py_buffer(offsets), col.arr.buffers()[2]]
    )
    base = sel * 5
    return {
        "method": cut.take(pa.array(base)),
        "path": cut.take(pa.array(base + 2)),
        "protocol": cut.take(pa.array(base + 4)),
    }


def _to_number(col: _Col, rows: np.ndarray, to: pa.DataType, dashes: bool) -> pa.Array:
    """Rows ``rows`` of a checked numeric column, cast by Arrow (``-`` rows are 0)."""
    text = col.text()
    if len(rows) < len(text):
        text = text.take(pa.array(rows))
    if not dashes:
        return pc.cast(text, to)
    return pc.cast(pc.if_else(pc.equal(text, "-"), "0", text), to)


def _spread(values: pa.Array, present: np.ndarray) -> pa.Array:
    """``values`` at the True positions of ``present``, nulls elsewhere."""
    if present.all():
        return values
    out = np.full(len(present), np.nan)
    out[present] = values.to_numpy()
    return pa.array(out, mask=~present)
