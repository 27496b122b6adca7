"""Per-core parse rate of the ``arrow`` strategy in CPU time, for before/after figures.

    .venv/bin/python bench/parse_rate.py [--rounds 60]

Parses the two combined batches of ``test_micro_parse`` (its inline batch and a
default-mix generator batch, 10 000 lines each, decompression included) with Arrow
on one thread, and prints the best, 25th percentile and median of
``time.process_time`` per batch, which leaves out time spent waiting for a CPU on
a shared machine. To measure another checkout's parser, put it first on the path:
``PYTHONPATH=/path/to/old/tree .venv/bin/python bench/parse_rate.py``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pyarrow as pa
from test_micro_parse import LINES, make_batch_of

from logpipe.parse import ParseOptions, parse_batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=60)
    rounds = ap.parse_args().rounds
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    import logpipe.parse

    print(f"parser: {os.path.dirname(logpipe.parse.__file__)}; load {os.getloadavg()}")
    for fmt in ("combined", "generator"):
        batch, times = make_batch_of(fmt), []
        for _ in range(rounds):
            t0 = time.process_time()
            stats, _ = parse_batch(batch, ParseOptions(strategy="arrow"))
            times.append(time.process_time() - t0)
            assert stats.parsed == LINES, stats.reasons
        best, p25, med = (float(np.percentile(times, p)) for p in (0, 25, 50))
        print(
            f"{fmt:9s} best {best * 1e3:5.1f} ms ({LINES / best:7,.0f} lines/s)  "
            f"p25 {p25 * 1e3:5.1f} ms  median {med * 1e3:5.1f} ms ({LINES / med:7,.0f} lines/s)"
        )


if __name__ == "__main__":
    main()
