"""The exact reference: counts per shard and merged, and the rows streamed in order."""

from __future__ import annotations

import pyarrow as pa
import pytest

from harness.integrity import Reference, build_reference, reference_stream, table_counts
from logpipe import rate
from logpipe.generate import GeneratorConfig, generate
from logpipe.parse import ParseOptions
from logpipe.shard import add_counts


@pytest.fixture(scope="module")
def batches():
    cfg = GeneratorConfig(seed=5, batch_lines=1_000, json_fraction=0.2)
    return generate(cfg, rate.Constant(4_000).line_offsets(3.0)).batches


def test_stream_counts_as_it_yields_and_matches_build_reference(ray_session: None, batches) -> None:
    opts = ParseOptions()
    ref = Reference(per_shard=[{}, {}])
    seen_ids = []
    merged_from_rows: dict = {}
    for i, (meta, table) in enumerate(reference_stream(batches, opts, "by_service", 2, ref)):
        seen_ids.append(meta.batch_id)
        assert isinstance(table, pa.Table) and table.num_rows > 0
        add_counts(merged_from_rows, table_counts(table))
        # Lazy: the counts cover exactly the batches yielded so far.
        assert ref.merged == merged_from_rows, f"after batch {i}"
    assert seen_ids == [b.meta.batch_id for b in batches]
    whole = build_reference(batches, opts, "by_service", 2)
    assert whole.merged == ref.merged and whole.per_shard == ref.per_shard
    assert len(batches) > 5


def test_build_reference_passes_every_table_to_on_table(ray_session: None, batches) -> None:
    got = []
    build_reference(batches[:3], ParseOptions(), "single", 1, on_table=lambda m, t: got.append(m))
    assert [m.batch_id for m in got] == [b.meta.batch_id for b in batches[:3]]
