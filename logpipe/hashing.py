"""Stable 64-bit hashes of UTF-8 strings, vectorized over Arrow string columns.

The hash is MurmurHash3-style over 8-byte words, identical in every process (never
Python's salted ``hash``), so shards on different nodes feed the same values to
:class:`logpipe.sketches.DistinctSketch`. All strings advance one word per numpy
step, longest first, so the Python loop runs once per 8-byte word of the longest
string, not once per string.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_U64 = np.uint64

_C1 = _U64(0x87C37B91114253D5)
_C2 = _U64(0x4CF5AD432745937F)
_M5 = _U64(5)
_N1 = _U64(0x52DCE729)
_F1 = _U64(0xFF51AFD7ED558CCD)
_F2 = _U64(0xC4CEB9FE1A85EC53)
_SEED = _U64(0x9E3779B97F4A7C15)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << _U64(r)) | (x >> _U64(64 - r))


def _fmix64(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> _U64(33))
    h = h * _F1
    h = h ^ (h >> _U64(33))
    h = h * _F2
    return h ^ (h >> _U64(33))


def _hash_utf8(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    """MurmurHash3-style 64-bit hash of each string, 8 bytes per step for all strings."""
    starts = offsets[:-1].astype(np.int64)
    lens = np.diff(offsets).astype(np.int64)
    # Longest strings first: the strings still active at word w are a prefix.
    order = np.argsort(-lens, kind="stable")
    s_starts, s_lens = starts[order], lens[order]
    padded = np.concatenate([data, np.zeros(8, dtype=np.uint8)])
    # Unaligned little-endian uint64 view at every byte offset: one gather per word.
    words = np.ndarray((len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))
    h = np.full(len(lens), _SEED, dtype=np.uint64)
    n_words = int(-(-s_lens[0] // 8)) if len(lens) else 0
    active = np.searchsorted(-s_lens, -8 * np.arange(n_words), side="left")
    for w in range(n_words):
        a = int(active[w])
        word = words[s_starts[:a] + 8 * w]
        rem = s_lens[:a] - 8 * w
        shift = (8 * np.minimum(rem, 8)).astype(np.uint64)
        # Mask bytes past the end of the string (shift by 64 would be undefined).
        mask = np.where(rem >= 8, _U64(0xFFFFFFFFFFFFFFFF), (_U64(1) << (shift % _U64(64))) - 1)
        k = _rotl((word & mask) * _C1, 31) * _C2
        hv = h[:a] ^ k
        h[:a] = _rotl(hv, 27) * _M5 + _N1
    h = _fmix64(h ^ s_lens.astype(np.uint64))
    out = np.empty_like(h)
    out[order] = h
    return out


def _hash_plain(arr: pa.Array) -> np.ndarray:
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.large_string())
    arr = pc.fill_null(arr, "") if arr.null_count else arr
    _, off_buf, data_buf = arr.buffers()
    off_type = np.int32 if pa.types.is_string(arr.type) else np.int64
    offsets = np.frombuffer(off_buf, dtype=off_type)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, "u1")
    return _hash_utf8(offsets, data)


def hash_strings(arr: pa.Array | pa.ChunkedArray | np.ndarray | Sequence[str]) -> np.ndarray:
    """Stable 64-bit hashes (uint64) of UTF-8 strings, identical in every process.

    Distinct values are hashed once (dictionary-encode, hash the dictionary, take).
    Nulls hash like the empty string.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not isinstance(arr, pa.Array):
        arr = pa.array(list(arr) if not isinstance(arr, np.ndarray) else arr, type=pa.string())
    if len(arr) == 0:
        return np.empty(0, dtype=np.uint64)
    if not pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_encode(arr)
    if len(arr.dictionary) == 0:
        return np.full(len(arr), _hash_plain(pa.array([""]))[0], dtype=np.uint64)
    dict_hash = _hash_plain(arr.dictionary)
    indices = arr.indices
    if indices.null_count:
        null_hash = _hash_plain(pa.array([""]))
        dict_hash = np.concatenate([dict_hash, null_hash])
        indices = pc.fill_null(indices, len(arr.dictionary))
    return dict_hash[indices.to_numpy(zero_copy_only=False)]
