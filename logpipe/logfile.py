"""Generated logs written to disk, with their ground truth beside them.

What ``logbench generate`` writes and ``--replay`` reads back: plain, gzip or
zstd lines (byte-identical across runs for the same settings) and a
``<path>.truth.json`` holding the settings and the injected anomalies.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import numpy as np
import zstandard

from logpipe.generate import GeneratorConfig, GroundTruth, ground_truth, iter_raw_batches


@dataclass(frozen=True)
class WrittenLog:
    """What :func:`write_log` wrote."""

    path: Path
    truth_path: Path
    lines: int
    raw_bytes: int
    truth: list[GroundTruth]


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...
    def close(self) -> None: ...


def _open_sink(path: Path, raw: IO[bytes]) -> _Sink:
    if path.suffix == ".gz":
        # mtime=0 and no file name keep the output byte-identical across runs.
        return gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
    if path.suffix == ".zst":
        return zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False)
    return raw


def write_log(path: str | Path, config: GeneratorConfig, offsets_s: np.ndarray) -> WrittenLog:
    """Write plain lines to ``path`` (gzip/zstd by ``.gz``/``.zst``) and ``<path>.truth.json``."""
    path = Path(path)
    lines = raw_bytes = 0
    with open(path, "wb") as raw:
        sink = _open_sink(path, raw)
        for rb in iter_raw_batches(config, offsets_s):
            sink.write(rb.raw)
            lines += rb.line_count
            raw_bytes += len(rb.raw)
        if sink is not raw:
            sink.close()
    truth = ground_truth(config)
    truth_path = path.with_name(path.name + ".truth.json")
    doc = {
        "kind": "logbench.truth",
        "lines": lines,
        "raw_bytes": raw_bytes,
        "config": config.to_dict(),
        "truth": [t.to_dict() for t in truth],
    }
    truth_path.write_text(json.dumps(doc, indent=2) + "\n")
    return WrittenLog(path, truth_path, lines, raw_bytes, truth)


def load_truth(path: str | Path) -> list[GroundTruth]:
    """Read the ground truth from a ``.truth.json`` file written by :func:`write_log`."""
    doc = json.loads(Path(path).read_text())
    return [GroundTruth.from_dict(t) for t in doc["truth"]]
