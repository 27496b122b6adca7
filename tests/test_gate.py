"""Every gate exit code, decided from synthetic results."""

from __future__ import annotations

from dataclasses import replace

from factories import from_samples, make_replicate, make_result

from harness import gate

GOOD = {"integrity.ok": 1.0, "detection.recall": 1.0}


def result_with(throughput: list[float], ok: bool = True, **kw):
    rows = [
        {"throughput.lines_per_s": t, "integrity.ok": 1.0 if ok else 0.0, "detection.recall": 1.0}
        for t in throughput
    ]
    res = make_result(rows, **kw)
    if not ok:
        reps = tuple(
            replace(r, integrity={"ok": False, "problems": ["lost 3 lines"]})
            for r in res.replicates
        )
        res = replace(res, replicates=reps)
    else:
        reps = tuple(replace(r, integrity={"ok": True, "problems": []}) for r in res.replicates)
        res = replace(res, replicates=reps)
    return res


STEADY = [1000.0, 1002.0, 998.0, 1001.0, 999.0, 1000.5, 999.5, 1001.5, 998.5, 1000.2]


def test_pass() -> None:
    out = gate.evaluate_gate(result_with(STEADY), ["integrity.ok == 1"], result_with(STEADY))
    assert out.exit_code == gate.PASS, out.reasons


def test_regression_against_baseline_exits_1() -> None:
    slower = [t * 0.7 for t in STEADY]
    out = gate.evaluate_gate(result_with(slower), ["integrity.ok == 1"], result_with(STEADY))
    assert out.exit_code == gate.REGRESSED
    assert any("throughput.lines_per_s" in r for r in out.reasons)


def test_failed_threshold_exits_3() -> None:
    out = gate.evaluate_gate(result_with(STEADY), ["throughput.lines_per_s > 5000"])
    assert out.exit_code == gate.THRESHOLDS_FAILED
    assert not out.thresholds[0].passed


def test_broken_integrity_exits_4_even_when_thresholds_fail_too() -> None:
    out = gate.evaluate_gate(result_with(STEADY, ok=False), ["throughput.lines_per_s > 5000"])
    assert out.exit_code == gate.INVALID
    assert any("integrity failed" in r for r in out.reasons)


def test_erratic_replicates_exit_4() -> None:
    out = gate.evaluate_gate(result_with([1000.0, 3000.0, 500.0]), [], max_cv=0.25)
    assert out.exit_code == gate.INVALID
    assert any("erratic" in r for r in out.reasons)


def test_comparison_flags_erratic_at_the_gates_limit() -> None:
    # CV about 15 %: erratic for compare's default 10 %, not for the gate's 25 %.
    noisy = [1000.0, 1300.0, 900.0, 1150.0, 1000.0, 800.0]
    out = gate.evaluate_gate(result_with(noisy), [], result_with(noisy), max_cv=0.25)
    assert out.exit_code == gate.PASS, out.reasons
    assert out.comparison is not None
    erratic = {v.name: v.erratic for v in out.comparison.verdicts}
    assert erratic["throughput.lines_per_s"] is False
    out = gate.evaluate_gate(result_with(noisy), [], result_with(noisy), max_cv=0.10)
    assert out.exit_code == gate.INVALID
    assert out.comparison is not None
    erratic = {v.name: v.erratic for v in out.comparison.verdicts}
    assert erratic["throughput.lines_per_s"] is True


def test_incomplete_run_is_invalid() -> None:
    out = gate.evaluate_gate(result_with(STEADY, complete=False), [])
    assert out.exit_code == gate.INVALID


def test_incompatible_baseline_is_a_usage_error() -> None:
    other = result_with(STEADY, name="baseline")
    out = gate.evaluate_gate(result_with(STEADY), [], other)
    assert out.exit_code == gate.USAGE


def test_threshold_on_missing_metric_fails_never_passes() -> None:
    res = from_samples({"throughput.lines_per_s": STEADY})
    res = replace(
        res,
        replicates=tuple(replace(r, integrity={"ok": True}) for r in res.replicates),
    )
    out = gate.evaluate_gate(res, ["detection.recall >= 1"])
    assert out.exit_code == gate.THRESHOLDS_FAILED


def test_replicate_factory_is_complete_by_default() -> None:
    assert make_replicate(0, GOOD).complete
