"""Batch source that replays a user's own access log (plain, gzip or zstd).

Every line of the file, malformed ones included, goes into exactly one batch, with
its bytes unchanged, so the parser can account for it; only a final line without a
newline gets one appended. Batch event times come from a light timestamp-only
extraction (vectorized regex over the batch), never from a full parse.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import zstandard

from logpipe.batch import CODECS, Batch, make_batch

FORMATS = ("auto", "combined", "json")

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_CHUNK = 1 << 20
_SNIFF_LINES = 20

# Combined (Apache/nginx) with or without the two trailing fields (request time,
# service) that the generator appends.
_COMBINED_RE = re.compile(
    rb'^\S+ \S+ \S+ \[[^\]]+\] "[^"]*" \d{3} (?:\d+|-) "[^"]*" "[^"]*"(?: \S+ \S+)?\s*$'
)
_MONTHS = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
           b"Dec")  # fmt: skip
_APACHE_TS = (
    r"\[(?P<d>\d{2})/(?P<mon>[A-Za-z]{3})/(?P<y>\d{4}):(?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})"
    r"(?: (?P<tz>[+-]\d{4}))?\]"
)
_ISO_TS = (
    r'"time"\s*:\s*"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})[T ](?P<h>\d{2}):(?P<mi>\d{2})'
    r":(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?(?P<tz>Z|[+-]\d{2}:?\d{2})?"
)


class ReplayError(ValueError):
    """A log file that cannot be replayed; the message is one line for the user."""


def _magic_open(path: Path) -> tuple[IO[bytes], str]:
    """Open ``path`` for reading decompressed bytes, chosen by magic bytes."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 (returned to the caller, who closes it)
    except FileNotFoundError:
        raise ReplayError(f"{path}: no such file") from None
    except OSError as exc:
        raise ReplayError(f"{path}: cannot open: {exc.strerror or exc}") from None
    head = raw.read(4)
    raw.seek(0)
    if head.startswith(_GZIP_MAGIC):
        raw.close()  # GzipFile never closes a fileobj it was given: let it own the file.
        return cast(IO[bytes], gzip.GzipFile(path, mode="rb")), "gzip"
    if head == _ZSTD_MAGIC:
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        return cast(IO[bytes], io.BufferedReader(reader, _CHUNK)), "zstd"
    return raw, "plain"


def _read(stream: IO[bytes], size: int, path: Path, kind: str) -> bytes:
    try:
        return stream.read(size)
    except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
        raise ReplayError(f"{path}: unreadable {kind} data: {exc}") from None


def _sniff(head: bytes) -> str | None:
    """``json``, ``combined`` or None from the first non-empty lines."""
    lines = [ln.strip() for ln in head.split(b"\n")[:-1] or [head]]
    lines = [ln for ln in lines if ln][:_SNIFF_LINES]
    votes = {"json": 0, "combined": 0}
    for ln in lines:
        if ln.startswith(b"{"):
            votes["json"] += 1
        elif _COMBINED_RE.match(ln):
            votes["combined"] += 1
    best = max(votes, key=lambda k: votes[k])
    # Most sampled lines must be log lines: one stray match in a binary file is no format.
    return best if sum(votes.values()) * 2 > len(lines) else None


def detect_format(path: str | Path) -> str:
    """The format of a log file: ``combined`` or ``json`` (raises :class:`ReplayError`)."""
    path = Path(path)
    stream, kind = _magic_open(path)
    with stream:
        return _detect(stream, path, kind)


def _detect(stream: IO[bytes], path: Path, kind: str, fmt: str = "auto") -> str:
    """Check the file is readable and not empty; resolve ``fmt="auto"`` by sniffing."""
    head = _read(stream, 64 * 1024, path, kind)
    if not head.strip():
        raise ReplayError(f"{path}: empty log file")
    if fmt != "auto":
        return fmt
    sniffed = _sniff(head)
    if sniffed is None:
        raise ReplayError(f"{path}: unknown log format (expected combined or JSON lines)")
    return sniffed


def _civil_ms(y: np.ndarray, mo: np.ndarray, d: np.ndarray, sec_of_day: np.ndarray) -> np.ndarray:
    """Epoch ms of proleptic Gregorian dates (Howard Hinnant's days_from_civil)."""
    y = y - (mo <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    doy = (153 * (mo + np.where(mo > 2, -3, 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    return (days * 86400 + sec_of_day) * 1000


def _num(col: pa.Array) -> np.ndarray:
    """Digits column to int64; empty strings (absent optional group) become 0."""
    s = pc.cast(col, pa.string())
    s = pc.if_else(pc.equal(s, ""), "0", s)
    return np.asarray(pc.cast(s, pa.int64()).to_numpy(zero_copy_only=False))


def _tz_offset_s(col: pa.Array) -> np.ndarray:
    """``+0200``, ``-05:30``, ``Z`` or empty to seconds east of UTC."""
    s = pc.cast(col, pa.string())
    digits = pc.replace_substring(pc.utf8_slice_codeunits(s, 1), ":", "")
    digits = pc.if_else(pc.equal(pc.utf8_length(digits), 4), digits, "0000")
    hhmm = np.asarray(pc.cast(digits, pa.int64()).to_numpy(zero_copy_only=False))
    sign = np.where(np.asarray(pc.starts_with(s, "-").to_numpy(zero_copy_only=False)), -1, 1)
    return sign * ((hhmm // 100) * 3600 + (hhmm % 100) * 60)


def _extract_ms(lines: pa.Array, fmt: str) -> np.ndarray:
    """Event ms per line (float, NaN when the timestamp cannot be read)."""
    out = np.full(len(lines), np.nan)
    m = pc.extract_regex(lines, _APACHE_TS if fmt == "combined" else _ISO_TS)
    valid = np.asarray(m.is_valid().to_numpy(zero_copy_only=False))
    if not valid.any():
        return out
    m = m.filter(pa.array(valid))
    f = {m.type.field(i).name: m.field(i) for i in range(m.type.num_fields)}
    if fmt == "combined":
        mo = pc.fill_null(pc.index_in(f["mon"], value_set=pa.array(_MONTHS)), -1).to_numpy() + 1
        frac_ms = np.zeros(len(mo), dtype=np.int64)
    else:
        mo = _num(f["mo"])
        frac = pc.utf8_slice_codeunits(pc.cast(f["f"], pa.string()), 0, 3)
        frac_ms = _num(pc.utf8_rpad(frac, width=3, padding="0"))
    d, h, mi, sec = _num(f["d"]), _num(f["h"]), _num(f["mi"]), _num(f["s"])
    ok = (mo >= 1) & (mo <= 12) & (d >= 1) & (d <= 31) & (h < 24) & (mi < 60) & (sec <= 60)
    sod = h * 3600 + mi * 60 + sec - _tz_offset_s(f["tz"])
    ms = _civil_ms(_num(f["y"]), mo, d, sod) + frac_ms
    out[np.flatnonzero(valid)] = np.where(ok, ms, np.nan)
    return out


def _lines_array(raw: bytes) -> pa.Array:
    ends = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == 10) + 1
    offsets = np.concatenate(([0], ends)).astype(np.int64)
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(raw)]
    return pa.Array.from_buffers(pa.large_binary(), len(ends), buffers)


def batch_event_ms(raw: bytes, fmt: str, prev_ms: int | None) -> tuple[int, int, int] | None:
    """``(first, max, last)`` readable event ms of a newline-terminated batch.

    An unreadable first line falls back to ``prev_ms`` (the last readable stamp
    before this batch) or, at the start of the file, to the batch's first readable
    stamp. None when no line of the batch has a readable stamp. Lines of the other
    format (a mixed stream) are tried with its extractor too.
    """
    lines = _lines_array(raw)
    ms = _extract_ms(lines, fmt)
    missing = np.isnan(ms)
    if missing.any():
        other = "json" if fmt == "combined" else "combined"
        idx = np.flatnonzero(missing)
        ms[idx] = _extract_ms(lines.take(pa.array(idx)), other)
    ok = ms[~np.isnan(ms)]
    if len(ok) == 0:
        return None
    first = int(ms[0]) if not np.isnan(ms[0]) else (int(ok[0]) if prev_ms is None else prev_ms)
    return first, int(ok.max()), int(ok[-1])


def _split_batches(chunks: Iterator[bytes], batch_lines: int) -> Iterator[tuple[bytes, int]]:
    """Regroup byte chunks into ``(raw, line_count)`` pieces of ``batch_lines`` lines."""
    parts: list[bytes] = []
    have = 0
    for chunk in chunks:
        nl = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)
        start = used = 0
        while len(nl) - used >= batch_lines - have:
            cut = int(nl[used + batch_lines - have - 1]) + 1
            used += batch_lines - have
            parts.append(chunk[start:cut])
            yield b"".join(parts), batch_lines
            parts, have, start = [], 0, cut
        if start < len(chunk):
            parts.append(chunk[start:])
        have += len(nl) - used
    tail = b"".join(parts)
    if tail:
        # A last line without newline still counts as a line; terminate it.
        terminated = tail.endswith(b"\n")
        yield (tail if terminated else tail + b"\n"), have + (0 if terminated else 1)


def _chunks(path: Path) -> Iterator[bytes]:
    # Opened on first use so that an unconsumed iterator holds no file handle.
    stream, kind = _magic_open(path)
    with stream:
        while chunk := _read(stream, _CHUNK, path, kind):
            yield chunk


def read_batches(
    path: str | Path,
    fmt: str = "auto",
    batch_lines: int = 10_000,
    codec: str = "zstd",
) -> Iterator[Batch]:
    """Batches (ids 0..N-1) of ``batch_lines`` lines read from a log file.

    Missing, empty, unknown-format or unreadable files raise :class:`ReplayError`
    here, before the first batch; corruption later in a compressed file raises it
    while iterating. ``last_event_ms`` never decreases from one batch to the next.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt: must be one of {FORMATS}, got {fmt!r}")
    if not isinstance(batch_lines, int) or batch_lines <= 0:
        raise ValueError(f"batch_lines: must be an int > 0, got {batch_lines!r}")
    if codec not in CODECS:
        raise ValueError(f"codec: must be one of {CODECS}, got {codec!r}")
    path = Path(path)
    stream, kind = _magic_open(path)
    try:
        fmt = _detect(stream, path, kind, fmt)
    finally:
        stream.close()
    return _batches(_chunks(path), fmt, batch_lines, codec)


def _batches(chunks: Iterator[bytes], fmt: str, batch_lines: int, codec: str) -> Iterator[Batch]:
    prev: int | None = None  # last readable stamp so far
    watermark: int | None = None
    for batch_id, (raw, count) in enumerate(_split_batches(chunks, batch_lines)):
        stamps = batch_event_ms(raw, fmt, prev)
        if stamps is None:
            first = high = 0 if prev is None else prev
        else:
            first, high, prev = stamps
        # The watermark never goes back, even when a log is slightly out of order.
        watermark = high if watermark is None else max(watermark, high)
        yield make_batch(batch_id, raw, count, first, watermark, codec)


def count_lines(path: str | Path) -> int:
    """Lines in a (possibly compressed) log file; a final unterminated line counts."""
    count, last = 0, b"\n"
    for chunk in _chunks(Path(path)):
        count += chunk.count(b"\n")
        last = chunk[-1:]
    return count + (last != b"\n")
