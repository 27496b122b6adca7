"""Result records, loading, migration, atomic writes and metadata capture."""

from __future__ import annotations

import json
import math
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from factories import full_replicate_dict, make_replicate, make_result
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import results
from harness.results import (
    MIGRATIONS,
    RESULT_KIND,
    SCHEMA_VERSION,
    Replicate,
    ResultError,
    RunResult,
    capture_metadata,
    load_result,
    migrate,
    summarize,
    write_result,
)

FIXED = datetime(2026, 12, 3, 15, 0, 0, tzinfo=timezone.utc)


def fixed_clock() -> datetime:
    return FIXED


def sample_result() -> RunResult:
    return make_result(
        [
            {"throughput.lines_per_s": 100.0, "latency.batch_p50_s": 0.2},
            {"throughput.lines_per_s": 110.0, "latency.batch_p50_s": None},
            {"throughput.lines_per_s": 90.0, "latency.batch_p50_s": 0.4},
        ]
    )


def as_dict(result: RunResult | None = None) -> dict[str, Any]:
    return json.loads(json.dumps((result or sample_result()).to_dict()))


def write_json(tmp_path: Path, data: Any, name: str = "r.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return p


# --------------------------------------------------------------------------- records


def test_round_trip_through_file(tmp_path: Path) -> None:
    res = sample_result()
    path = write_result(res, tmp_path, clock=fixed_clock)
    assert path.name == "smoke-20261203T150000Z.json"
    loaded = load_result(path)
    assert loaded == res
    assert loaded.to_dict() == res.to_dict()


def test_full_replicate_round_trip() -> None:
    rep = Replicate.from_dict(full_replicate_dict())
    assert rep.samples["latency.batch_s"] == [0.1, 0.2, 0.15]
    assert rep.alerts[0]["alert_id"] == 3
    assert rep.to_dict() == full_replicate_dict()


def test_records_are_frozen() -> None:
    res = sample_result()
    with pytest.raises(AttributeError):
        res.complete = False  # type: ignore[misc]
    with pytest.raises(AttributeError):
        res.replicates[0].index = 5  # type: ignore[misc]


def test_to_dict_does_not_alias_nested_data() -> None:
    res = sample_result()
    d = res.to_dict()
    d["scenario"]["settings"]["pipeline"]["shards"] = 99
    assert res.scenario.settings["pipeline"]["shards"] == 2


def test_numpy_values_are_written_as_plain_json(tmp_path: Path) -> None:
    import numpy as np

    rep = make_replicate(
        0,
        {"x": np.float64(2.5)},
        samples={"latency.batch_s": np.array([0.1, 0.2])},
        shards={"lines": np.array([3, 4], dtype=np.int64)},
    )
    res = RunResult.create(sample_result().scenario, {"n": np.int64(7)}, [rep])
    loaded = load_result(write_result(res, tmp_path, clock=fixed_clock))
    assert loaded.replicates[0].samples["latency.batch_s"] == [0.1, 0.2]
    assert loaded.replicates[0].shards == {"lines": [3, 4]}
    assert loaded.metadata == {"n": 7}


def test_summarize_statistics() -> None:
    s = summarize(sample_result().replicates)
    thr = s["throughput.lines_per_s"]
    assert thr["median"] == 100.0 and thr["mean"] == 100.0
    assert thr["min"] == 90.0 and thr["max"] == 110.0 and thr["n"] == 3
    assert thr["stdev"] == pytest.approx(10.0)
    assert thr["cv"] == pytest.approx(0.1)
    lat = s["latency.batch_p50_s"]
    assert lat["n"] == 2 and lat["median"] == pytest.approx(0.3)


def test_summarize_edge_cases() -> None:
    s = summarize([make_replicate(0, {"a": None, "b": 5.0})])
    assert s["a"]["n"] == 0 and s["a"]["median"] is None
    assert s["b"]["stdev"] is None and s["b"]["cv"] is None and s["b"]["median"] == 5.0
    zero = summarize([make_replicate(0, {"z": 0.0}), make_replicate(1, {"z": 0.0})])
    assert zero["z"]["stdev"] == 0.0 and zero["z"]["cv"] is None


def test_create_summarizes_complete_replicates_only() -> None:
    res = RunResult.create(
        scenario=sample_result().scenario,
        metadata={},
        replicates=[
            make_replicate(0, {"x": 1.0}),
            make_replicate(1, {"x": 100.0}, complete=False),
        ],
        complete=False,
    )
    assert res.summary["x"]["n"] == 1 and res.summary["x"]["max"] == 1.0
    assert res.metric_values("x") == [1.0]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.floats(-1e12, 1e12, allow_nan=False)), min_size=1, max_size=8)
)
def test_summary_matches_values_property(values: list[float | None]) -> None:
    reps = [make_replicate(i, {"m": x}) for i, x in enumerate(values)]
    s = summarize(reps)["m"]
    present = [x for x in values if x is not None]
    assert s["n"] == len(present)
    if present:
        assert s["min"] == min(present) and s["max"] == max(present)
        assert s["min"] <= s["median"] <= s["max"]  # type: ignore[operator]
    # and the summary always survives the validator
    RunResult.from_dict(as_dict(RunResult.create(sample_result().scenario, {}, reps)))


# --------------------------------------------------------------------------- writing


def test_write_never_overwrites(tmp_path: Path) -> None:
    res = sample_result()
    paths = [write_result(res, tmp_path, clock=fixed_clock) for _ in range(3)]
    assert [p.name for p in paths] == [
        "smoke-20261203T150000Z.json",
        "smoke-20261203T150000Z-1.json",
        "smoke-20261203T150000Z-2.json",
    ]
    assert all(load_result(p) == res for p in paths)


def test_write_leaves_no_temp_files_and_names_variant(tmp_path: Path) -> None:
    res = make_result([{"x": 1.0}], name="matrix/odd name", variant="shards=4")
    path = write_result(res, tmp_path / "new" / "dir", clock=fixed_clock)
    assert path.name == "matrix_odd_name-shards_4-20261203T150000Z.json"
    assert sorted(os.listdir(path.parent)) == [path.name]


def test_write_refuses_invalid_result_without_leaving_a_file(tmp_path: Path) -> None:
    bad = make_result([{"x": math.nan}])
    with pytest.raises(ResultError, match=r"replicates\[0\]\.metrics\.x"):
        write_result(bad, tmp_path, clock=fixed_clock)
    assert os.listdir(tmp_path) == []


def test_write_refuses_unserialisable_metadata(tmp_path: Path) -> None:
    res = make_result([{"x": 1.0}], metadata={"weird": object()})
    with pytest.raises(ResultError, match="not JSON-serialisable"):
        write_result(res, tmp_path, clock=fixed_clock)
    assert os.listdir(tmp_path) == []


def test_failed_write_leaves_neither_partial_nor_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(results.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        write_result(sample_result(), tmp_path, clock=fixed_clock)
    assert os.listdir(tmp_path) == []


def test_existing_file_is_never_replaced(tmp_path: Path) -> None:
    taken = tmp_path / "smoke-20261203T150000Z.json"
    taken.write_text("someone else's file")
    path = write_result(sample_result(), tmp_path, clock=fixed_clock)
    assert path.name == "smoke-20261203T150000Z-1.json"
    assert taken.read_text() == "someone else's file"


def test_publish_falls_back_to_replace_without_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(src: Any, dst: Any) -> None:
        raise PermissionError("hard links not supported")

    monkeypatch.setattr(results.os, "link", no_link)
    res = sample_result()
    first = write_result(res, tmp_path, clock=fixed_clock)
    second = write_result(res, tmp_path, clock=fixed_clock)
    assert first != second and load_result(first) == load_result(second) == res
    assert len(os.listdir(tmp_path)) == 2


# --------------------------------------------------------------------------- validation


def test_truncated_json(tmp_path: Path) -> None:
    p = tmp_path / "t.json"
    p.write_text(json.dumps(as_dict())[:200])
    with pytest.raises(ResultError, match=r"t\.json: not a valid result file: ") as exc:
        load_result(p)
    assert "\n" not in str(exc.value)


def test_not_json_and_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "b.json"
    p.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ResultError, match="not a valid result file"):
        load_result(p)
    with pytest.raises(ResultError, match="cannot read"):
        load_result(tmp_path / "missing.json")


def test_wrong_kind(tmp_path: Path) -> None:
    d = as_dict()
    d["kind"] = "pytest-benchmark"
    with pytest.raises(ResultError, match=r"not a logbench result \(kind 'pytest-benchmark'"):
        load_result(write_json(tmp_path, d))
    with pytest.raises(ResultError, match="top level: expected object"):
        load_result(write_json(tmp_path, [1, 2]))


def test_newer_schema_version(tmp_path: Path) -> None:
    d = as_dict()
    d["schema_version"] = SCHEMA_VERSION + 2
    with pytest.raises(ResultError) as exc:
        load_result(write_json(tmp_path, d))
    assert str(exc.value).endswith(
        f"written by a newer logbench (schema {SCHEMA_VERSION + 2} > {SCHEMA_VERSION}); upgrade"
    )


def test_field_errors_name_the_file(tmp_path: Path) -> None:
    d = as_dict()
    d["replicates"][0]["metrics"] = []
    with pytest.raises(ResultError) as exc:
        load_result(write_json(tmp_path, d))
    assert (
        str(exc.value)
        == f"{tmp_path / 'r.json'}: replicates[0].metrics: expected object, got array"
    )


def test_null_metric_is_allowed(tmp_path: Path) -> None:
    loaded = load_result(write_result(sample_result(), tmp_path, clock=fixed_clock))
    assert loaded.replicates[1].metrics["latency.batch_p50_s"] is None


# --------------------------------------------------------------------------- migration


def version_0_dict() -> dict[str, Any]:
    """A result as the pre-release draft wrote it: no ``kind``, no ``summary``."""
    d = as_dict()
    del d["kind"], d["summary"]
    d["schema_version"] = 0
    return d


def test_migration_from_version_0(tmp_path: Path) -> None:
    assert 0 in MIGRATIONS
    migrated = migrate(version_0_dict())
    assert migrated["schema_version"] == SCHEMA_VERSION and migrated["kind"] == RESULT_KIND
    loaded = load_result(write_json(tmp_path, version_0_dict()))
    assert loaded.summary == sample_result().summary
    assert loaded.replicates == sample_result().replicates


def test_migration_validates_broken_v0(tmp_path: Path) -> None:
    d = version_0_dict()
    d["replicates"][2]["metrics"] = None
    with pytest.raises(ResultError, match=r"replicates\[2\]\.metrics: expected object, got null"):
        load_result(write_json(tmp_path, d))


def version_1_dict(ray: dict[str, Any] | None) -> dict[str, Any]:
    """A version-1 result, whose settings predate ``ray.free_objects_period_ms``."""
    settings: dict[str, Any] = {"generator": {"seed": 1}}
    if ray is not None:
        settings["ray"] = ray
    d = as_dict(make_result([{"throughput.lines_per_s": 100.0}], settings=settings))
    d["schema_version"] = 1
    return d


def test_migration_from_version_1_records_rays_default_eviction_period(tmp_path: Path) -> None:
    assert 1 in MIGRATIONS
    old = version_1_dict({"object_store_memory": 268435456})
    loaded = load_result(write_json(tmp_path, old))
    assert loaded.scenario.settings["ray"] == {
        "object_store_memory": 268435456,
        "free_objects_period_ms": None,
    }
    assert old["scenario"]["settings"]["ray"] == {"object_store_memory": 268435456}  # not mutated


def test_migration_from_version_1_keeps_a_recorded_period_and_settings_without_ray() -> None:
    kept = migrate(version_1_dict({"free_objects_period_ms": 0}))
    assert kept["scenario"]["settings"]["ray"] == {"free_objects_period_ms": 0}
    bare = migrate(version_1_dict(None))
    assert bare["schema_version"] == SCHEMA_VERSION and "ray" not in bare["scenario"]["settings"]


def test_unsupported_old_version() -> None:
    d = as_dict()
    d["schema_version"] = -1
    with pytest.raises(ResultError, match="schema_version -1 is not supported"):
        migrate(d)
    d["schema_version"] = "1"
    with pytest.raises(ResultError, match="schema_version: expected integer"):
        migrate(d)


# --------------------------------------------------------------------------- metadata


def test_capture_metadata_fields(tmp_path: Path) -> None:
    meta = capture_metadata({"lines_per_s": 5.0, "samples": [5.0]}, "ray://x:10001", fixed_clock)
    assert meta["started_at"] == "2026-12-03T15:00:00Z"
    assert meta["ray_address"] == "ray://x:10001"
    assert meta["calibration"] == {"lines_per_s": 5.0, "samples": [5.0]}
    assert isinstance(meta["cpu_count"], int) and meta["cpu_count"] >= 1
    assert meta["memory_bytes"] > 0
    assert meta["python"].count(".") == 2
    for dist in ("ray", "pyarrow", "numpy"):
        assert isinstance(meta[dist], str) and meta[dist][0].isdigit()
    assert json.loads(json.dumps(meta)) == meta


def test_capture_metadata_tolerates_missing_git(tmp_path: Path) -> None:
    meta = capture_metadata(None, None, fixed_clock, repo_dir=tmp_path)
    assert meta["git_commit"] is None and meta["git_dirty"] is None
    assert meta["calibration"] is None


def test_capture_metadata_reads_git(tmp_path: Path) -> None:
    meta = capture_metadata(None, None, fixed_clock)
    if meta["git_commit"] is None:
        pytest.skip("no git in this environment")
    assert re.fullmatch(r"[0-9a-f]{40}", meta["git_commit"])
    assert isinstance(meta["git_dirty"], bool)


def test_cpu_model_parsing(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: X\nmodel name\t: Fancy CPU 9000\n")
    assert results._cpu_model(info) == "Fancy CPU 9000"
