"""Matrices: variant names, axes, explicit variants and their errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from harness.matrix import Matrix
from harness.scenario import GeneratorSpec, RateSpec, Scenario, ScenarioError

MiB = 1024 * 1024


def scn(**kw: Any) -> Scenario:
    kw.setdefault("name", "t")
    kw.setdefault("generator", GeneratorSpec(rate=RateSpec.constant(1000), duration_s=10.0))
    return Scenario(**kw)


def test_matrix_names_are_readable_unique_and_deterministic() -> None:
    def build() -> Matrix:
        return Matrix(
            scn(),
            {
                "sharding.strategy": ["single", "by_service"],
                "sharding.shards": [1, 4],
                ("generator.user_skew", "generator.endpoint_skew"): [0.8, 1.5],
            },
            labels={
                "sharding.shards": "",
                ("generator.user_skew", "generator.endpoint_skew"): "skew",
            },
            where=lambda v: v["sharding.strategy"] != "single" or v["sharding.shards"] == 1,
        )

    names = [n for n, _ in build().variants()]
    assert names == [n for n, _ in build().variants()]
    assert len(names) == len(set(names)) == 6
    assert "by_service-4-skew1.5" in names and "single-4-skew0.8" not in names
    variant = dict(build().variants())["by_service-4-skew1.5"]
    assert variant.generator.user_skew == variant.generator.endpoint_skew == 1.5
    assert variant.name == "t"


def test_matrix_default_labels() -> None:
    m = Matrix(scn(), {"parser.parallelism": [1, 2], "measurement.samplers": [True, False]})
    assert [n for n, _ in m.variants()][:2] == [
        "parallelism1-samplers_on",
        "parallelism1-samplers_off",
    ]


def test_matrix_explicit_variants() -> None:
    other = scn(name="other")
    m = Matrix(
        scn(),
        variants={
            "small": {"ray.object_store_memory": 80 * MiB},
            "b": ["parser.strategy=regex"],
            "c": other,
        },
    )
    got = dict(m.variants())
    assert got["small"].ray.object_store_memory == 80 * MiB
    assert got["b"].parser.strategy == "regex" and got["c"] is other


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: Matrix(scn()), "either axes or variants"),
        (lambda: Matrix(scn(), {}), "matrix.axes"),
        (lambda: Matrix(scn(), {"parser.parallelism": []}), "matrix.axes"),
        (lambda: Matrix(scn(), {"parser.paralelism": [1]}), "matrix axis parser.paralelism"),
        (lambda: Matrix(scn(), {"parser.parallelism": [0]}), "parser.parallelism: .*variant"),
        (lambda: Matrix(scn(), {"parser.parallelism": [1, 1]}), "not unique"),
        (lambda: Matrix(scn(), {"parser.parallelism": [1]}, where=lambda v: False), "no variants"),
        (lambda: Matrix(scn(), variants={"a b": {}}), r"matrix.variants\['a b'\]"),
        (lambda: Matrix("base", {"x": [1]}), "base must be a Scenario"),  # type: ignore[arg-type]
    ],
)
def test_matrix_errors(build: Callable[[], Any], match: str) -> None:
    with pytest.raises(ScenarioError, match=match):
        build()
