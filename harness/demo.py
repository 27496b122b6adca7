"""`logbench demo`: a short pipeline run with injected anomalies, alerts printed live.

The demo is one replicate of a built-in scenario run through the same runner as
every benchmark, with a reporter that prints alerts as they arrive and a final
summary comparing alerts with the injected ground truth.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from harness import api
from harness.console import ProgressReporter, fmt, make_console, safe
from harness.results import RunResult
from harness.scenario import (
    GeneratorSpec,
    InjectionSpec,
    MeasurementSpec,
    RateSpec,
    Scenario,
    WindowsSpec,
)


def demo_scenario(duration_s: float = 20.0, rate: float = 50_000.0) -> Scenario:
    """Steady Zipf traffic with one anomaly of each kind, one after another.

    The first 4 s build the detector's baselines; the anomalies share the rest.
    """
    lead = 4.0
    slot = max((duration_s - lead - 1.0) / 3, 1.0)
    kinds = ("error_rate", "latency", "user_activity")
    return Scenario(
        name="demo",
        description="logbench demo: one anomaly of each kind on steady traffic",
        generator=GeneratorSpec(
            rate=RateSpec.constant(rate),
            duration_s=duration_s,
            batch_lines=5_000,
            json_fraction=0.2,
            seed=7,
            injections=tuple(
                InjectionSpec(kind, start_s=lead + i * slot, duration_s=0.8 * slot)
                for i, kind in enumerate(kinds)
            ),
        ),
        windows=WindowsSpec(size_s=4, slide_s=1),
        detector={"warmup_windows": 3},
        measurement=MeasurementSpec(warmup_s=1.0, replicates=1),
    )


def summary_of(result: RunResult) -> dict[str, Any]:
    """The demo's JSON summary: accounting, injected anomalies, alerts, detected."""
    rep = result.replicates[0]
    m = rep.metrics
    return {
        "complete": result.complete,
        "lines_emitted": int(m.get("integrity.lines_emitted") or 0),
        "lines_parsed": int(m.get("integrity.lines_parsed") or 0),
        "lines_rejected": int(m.get("integrity.lines_rejected") or 0),
        "lines_per_s": m.get("throughput.lines_per_s"),
        "integrity_ok": bool(rep.integrity.get("ok")),
        "injected": [
            {"kind": d["kind"], "key": d["key"], "start": d["start_ms"], "end": d["end_ms"]}
            for d in rep.detections
        ],
        "alerts": [dict(a) for a in rep.alerts],
        "detected": sum(1 for d in rep.detections if d["detected"]),
        "ttd_s": [d.get("ttd_s") for d in rep.detections],
    }


def run_demo(
    json_path: str | None = None,
    replay: str | None = None,
    replay_format: str | None = None,
    address: str | None = None,
    duration_s: float = 20.0,
    stop: threading.Event | None = None,
) -> int:
    """Run the demo; print alerts live and a summary; optionally write JSON."""
    scenario = demo_scenario(duration_s)
    overrides = []
    if replay:
        overrides += [f"generator.replay={json.dumps(replay)}", "generator.injections=[]"]
        if replay_format:
            overrides.append(f"generator.replay_format={replay_format}")
        scenario = scenario.with_overrides(overrides)
    console = make_console()
    reporter = ProgressReporter(console, "demo", show_alerts=True)
    planned = api.Planned("demo", None, scenario)
    result = api.run_planned(planned, address, reporter, stop)
    summary = summary_of(result)
    console.print(
        f"lines emitted {summary['lines_emitted']:,}  parsed {summary['lines_parsed']:,}  "
        f"rejected {summary['lines_rejected']:,}  rate {fmt(summary['lines_per_s'], 'lines/s')}"
        f" lines/s  integrity {'ok' if summary['integrity_ok'] else 'FAILED'}"
    )
    for d in result.replicates[0].detections:
        status = f"detected in {fmt(d.get('ttd_s'), 's')}" if d["detected"] else "MISSED"
        console.print(f"injected {safe(d['kind'])} on {safe(d['key'])}: {status}")
    console.print(
        f"alerts {len(summary['alerts'])}, injected {len(summary['injected'])}, "
        f"detected {summary['detected']}"
    )
    if json_path:
        Path(json_path).write_text(json.dumps(summary, indent=2, default=str) + "\n")
        console.print(f"summary: {json_path}")
    return 0 if result.complete else 130
