"""Compressed log batches: the unit that travels through Ray's object store.

A batch payload is a ``numpy.uint8`` array so that Ray stores it as a buffer and
workers read it zero-copy (plain ``bytes`` would be copied on every get).
Decoding is bounded: a payload that decompresses to more than its stated size
(a decompression bomb), or that is truncated or corrupt, raises
:class:`CorruptBatch` with the reason, and never allocates more than
``max_bytes``.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass

import numpy as np
import zstandard

CODECS = ("zstd", "gzip", "none")

# Headroom allowed over the stated raw size before a payload counts as a bomb.
_SIZE_SLACK = 64


class CorruptBatch(ValueError):
    """A batch that cannot be decoded; ``reason`` is a short machine-usable tag."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class BatchMeta:
    """What is known about a batch without decoding it."""

    batch_id: int
    line_count: int
    raw_bytes: int
    first_event_ms: int
    last_event_ms: int
    codec: str = "zstd"


@dataclass(frozen=True)
class Batch:
    """A compressed batch of newline-terminated log lines."""

    meta: BatchMeta
    payload: np.ndarray  # uint8, compressed

    @property
    def batch_id(self) -> int:
        return self.meta.batch_id

    @property
    def compressed_bytes(self) -> int:
        return int(self.payload.nbytes)


def encode(raw: bytes, codec: str = "zstd", level: int = 3) -> np.ndarray:
    """Compress ``raw`` with ``codec`` into a uint8 array."""
    if codec == "zstd":
        data = zstandard.ZstdCompressor(level=level).compress(raw)
    elif codec == "gzip":
        # mtime=0 keeps output byte-identical across runs.
        data = gzip.compress(raw, compresslevel=min(max(level, 1), 9), mtime=0)
    elif codec == "none":
        data = raw
    else:
        raise ValueError(f"codec: unknown codec {codec!r} (expected one of {', '.join(CODECS)})")
    return np.frombuffer(data, dtype=np.uint8).copy()


def make_batch(
    batch_id: int,
    raw: bytes,
    line_count: int,
    first_event_ms: int,
    last_event_ms: int,
    codec: str = "zstd",
    level: int = 3,
) -> Batch:
    """Compress ``raw`` lines into a :class:`Batch`."""
    meta = BatchMeta(batch_id, line_count, len(raw), first_event_ms, last_event_ms, codec)
    return Batch(meta, encode(raw, codec, level))


def decode(batch: Batch, max_bytes: int | None = None) -> bytes:
    """Decompress a batch, refusing to produce more than its stated size.

    ``max_bytes`` defaults to the stated raw size plus a small slack; output is
    never larger than that bound, whatever the payload claims.
    """
    limit = batch.meta.raw_bytes + _SIZE_SLACK if max_bytes is None else max_bytes
    buf = memoryview(batch.payload.data)
    codec = batch.meta.codec
    if codec == "none":
        if len(buf) > limit:
            raise CorruptBatch("oversized", f"{len(buf)} bytes > limit {limit}")
        return bytes(buf)
    if codec == "zstd":
        return _decode_zstd(buf, limit)
    if codec == "gzip":
        return _decode_gzip(buf, limit)
    raise CorruptBatch("unknown_codec", repr(codec))


def _decode_zstd(buf: memoryview, limit: int) -> bytes:
    dctx = zstandard.ZstdDecompressor()
    try:
        size = zstandard.frame_content_size(buf)
    except zstandard.ZstdError as exc:
        raise CorruptBatch("corrupt", f"zstd: {exc}") from None
    if size > limit:
        raise CorruptBatch("bomb", f"frame declares {size} bytes > limit {limit}")
    try:
        # A declared size <= limit bounds the allocation; otherwise max_output_size does.
        return dctx.decompress(buf, max_output_size=limit if size < 0 else 0)
    except zstandard.ZstdError as exc:
        detail = str(exc)
    if size < 0:
        # Unknown size: tell a bomb from a broken frame with a bounded streaming read.
        try:
            produced = len(dctx.stream_reader(buf, read_across_frames=False).read(limit + 1))
        except zstandard.ZstdError:
            produced = 0
        if produced > limit:
            raise CorruptBatch("bomb", f"decompressed past limit {limit}")
    reason = "truncated" if "full frame" in detail else "corrupt"
    raise CorruptBatch(reason, f"zstd: {detail}")


def _decode_gzip(buf: memoryview, limit: int) -> bytes:
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        # max_length bounds the allocation: a bomb stops at limit + 1 bytes.
        out = d.decompress(bytes(buf), limit + 1)
    except zlib.error as exc:
        raise CorruptBatch("corrupt", f"gzip: {exc}") from None
    if len(out) > limit:
        raise CorruptBatch("bomb", f"decompressed past limit {limit}")
    if not d.eof:
        raise CorruptBatch("truncated", "gzip stream incomplete")
    return out
