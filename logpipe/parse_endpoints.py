"""Vectorized endpoint templating: the twin of :func:`logpipe.parse_rules.endpoint_of`.

A path's query (from its first ``?``) is dropped, and every segment (the bytes
after a slash, up to the next slash or the query) that is an id becomes ``{id}``:
all digits, or 16 or more hex digits, or a UUID. The regex twin replaces exactly
these (two passes catch consecutive ones).

All paths are handled at once on their flat bytes. The output is described as
runs (a kept byte range of the input, or the literal ``{id}``) and gathered with
one index array, so the work is a few passes over the bytes plus a few over the
slashes: no per-path loop and no regular expression.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from logpipe.parse_vec import NOT_DIGIT

_IS_HEX = NOT_DIGIT == 0
_IS_HEX[[*range(ord("a"), ord("g")), *range(ord("A"), ord("G"))]] = True
_ID_TEXT = b"{id}"


def endpoints(paths: pa.Array) -> pa.Array:
    """Templated endpoints of a string array of paths (same length, no nulls)."""
    n = len(paths)
    raw_offs = np.frombuffer(paths.buffers()[1], np.int32)[paths.offset : paths.offset + n + 1]
    if n == 0 or raw_offs[-1] == raw_offs[0]:
        return paths
    first = int(raw_offs[0])
    offs = raw_offs.astype(np.int64) - first
    data = np.frombuffer(paths.buffers()[2], np.uint8)[first : first + int(offs[-1])]
    row = np.repeat(np.arange(n, dtype=np.int32), np.diff(offs))  # path of each byte
    end = offs[1:].copy()  # end of each path without its query
    q = np.flatnonzero(data == ord("?"))
    if len(q):
        q_row = row.take(q)
        head = np.append(True, q_row[1:] != q_row[:-1])
        end[q_row[head]] = q[head]
    sl = np.flatnonzero(data == ord("/"))
    sl_row = row.take(sl)  # ndarray.take: faster than fancy indexing for 1-D gathers
    inside = sl < end.take(sl_row)
    sl, sl_row = sl[inside], sl_row[inside]
    same = np.append(sl_row[1:] == sl_row[:-1], False)
    seg_s = sl + 1
    seg_e = np.where(same, np.append(sl[1:], 0), end.take(sl_row))
    ids = _id_segments(data, seg_s, seg_e)
    if not ids.any() and not len(q):
        return paths
    return _rebuild(data, offs, end, seg_s[ids], seg_e[ids], sl_row[ids])


def _id_segments(data: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Which byte ranges ``[s, e)`` of ``data`` are ids: digits, 16+ hex digits, a UUID."""
    n = e - s
    # Non-digits before each offset: a segment is all digits when none lies in it.
    before = np.empty(len(data) + 1, np.int32)
    before[0] = 0
    np.cumsum((data - np.uint8(48)) >= 10, dtype=np.int32, out=before[1:])
    ids = (n >= 1) & (before.take(e) == before.take(s))
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


def _rebuild(
    data: np.ndarray,
    offs: np.ndarray,
    end: np.ndarray,
    s_id: np.ndarray,
    e_id: np.ndarray,
    id_row: np.ndarray,
) -> pa.Array:
    """The output paths: per path, kept ranges with ``{id}`` between them.

    Path r's runs are ``[start, s_1) {id} [e_1, s_2) {id} ... [e_k, end_r)``; run j
    of the whole output is where its bytes go, and ``{id}`` is read from just past
    the input's bytes.
    """
    n, k, lit = len(end), len(s_id), len(data)
    per_row = np.bincount(id_row, minlength=n)
    before = np.zeros(n + 1, np.int64)  # ids in earlier rows
    np.cumsum(per_row, out=before[1:])
    j = np.arange(k)
    first_in_row = j == before[id_row]
    src = np.empty(2 * k + n, np.int64)
    length = np.empty(2 * k + n, np.int64)
    at = 2 * j + id_row  # the kept run before id j, then {id}
    prev_end = np.where(first_in_row, offs[id_row], np.append(0, e_id[:-1]))
    src[at], length[at] = prev_end, s_id - prev_end
    src[at + 1], length[at + 1] = lit, len(_ID_TEXT)
    last = 2 * before[1:] + np.arange(n)  # each row's final kept run
    tail_from = offs[:-1].copy()
    has = per_row > 0
    tail_from[has] = e_id[before[1:][has] - 1]
    src[last], length[last] = tail_from, end - tail_from
    id_bytes = np.zeros(k + 1, np.int64)
    np.cumsum(e_id - s_id, out=id_bytes[1:])
    row_len = end - offs[:-1] - (id_bytes[before[1:]] - id_bytes[before[:-1]]) + 4 * per_row
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(row_len, out=offsets[1:])
    out = np.append(data, np.frombuffer(_ID_TEXT, np.uint8)).take(_gather_index(src, length))
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(out)]
    )


def _gather_index(src: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Input offsets of the concatenated ranges ``[src, src + length)``, in order."""
    keep = length > 0
    src, length = src[keep].astype(np.int32), length[keep].astype(np.int32)
    starts = np.cumsum(length)
    step = np.ones(int(starts[-1]) if len(starts) else 0, np.int32)
    if len(src):
        step[0] = src[0]
        step[starts[:-1]] = src[1:] - (src[:-1] + length[:-1] - 1)
    return np.cumsum(step, out=step)
