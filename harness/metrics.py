"""The metric vocabulary: every public metric name, its unit, direction and definition.

Thresholds, comparisons, gates, exports and reports refer to metrics only by
these dotted names. ``direction`` says which way is good: ``"higher"``,
``"lower"``, or ``None`` for metrics that are facts rather than scores (counts
used by integrity checks). The definitions here are the ones written in
``docs/metrics.md``; keep the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricDef:
    """Definition of one public metric."""

    name: str
    unit: str
    direction: str | None  # "higher", "lower" or None
    description: str
    # Compared by default in `logbench compare` / gated in `logbench gate`.
    gated: bool = False
    # Throughput-like metrics can be normalised by the machine calibration.
    normalizable: bool = False


_DEFS = (
    MetricDef(
        "throughput.lines_per_s",
        "lines/s",
        "higher",
        "Lines fully aggregated (parsed + rejected) per second of wall time over the "
        "steady-state window (after warm-up, until the last batch completes).",
        gated=True,
        normalizable=True,
    ),
    MetricDef(
        "throughput.end_to_end_lines_per_s",
        "lines/s",
        "higher",
        "Lines of the replicate over the wall seconds from its first planned emit time "
        "to the end of the final flush (every batch aggregated, every pane closed and "
        "through the detector). Below capacity it follows the offered schedule; above "
        "it, it is the capacity with the ramp-up, the drain and the flush that "
        "throughput.lines_per_s leaves out: what `logbench peers` compares with "
        "engines timed from start to finish. Null for an interrupted replicate.",
        normalizable=True,
    ),
    MetricDef(
        "throughput.mb_per_s",
        "MB/s",
        "higher",
        "Raw (uncompressed) log megabytes (10^6 bytes) aggregated per second over the "
        "steady-state window.",
        normalizable=True,
    ),
    MetricDef(
        "throughput.offered_lines_per_s",
        "lines/s",
        None,
        "Planned arrival rate over the steady-state window (lines scheduled / duration).",
    ),
    MetricDef(
        "throughput.max_sustainable_lines_per_s",
        "lines/s",
        "higher",
        "Highest constant arrival rate found sustainable by the max-rate search "
        "(measurement.search): over the measured window batch latency does not grow "
        "and no backlog builds up (see harness/search.py); null when none was.",
        normalizable=True,
    ),
    MetricDef(
        "search.detection_rate_lines_per_s",
        "lines/s",
        None,
        "Constant rate offered by the search's detection probe: "
        "measurement.search_detection_fraction x the maximum sustainable rate. In a "
        "search result the detection.* metrics are that probe's (the search probes "
        "carry no anomalies).",
    ),
    MetricDef(
        "search.detection_target_s",
        "s",
        None,
        "Bound for the detection probe's delay over the oracle: one window slide in "
        "wall seconds (windows.slide_s / generator.event_speed) plus 0.25 s.",
    ),
    MetricDef(
        "object_store.peak_bytes",
        "bytes",
        "lower",
        "Highest object-store usage sampled during the replicate, minus the usage "
        "sampled just before it started (once earlier frees have settled: three "
        "readings without a fall, at most 2 s). Usage is the raylet's: it includes "
        "objects already released but not yet evicted (the raylet frees them in "
        "batches every `ray.free_objects_period_ms`: 0, at once, for a Ray that "
        "logbench starts; Ray's own default is once a second), so it is above what "
        "is referenced.",
        gated=True,
    ),
    MetricDef(
        "object_store.mean_bytes",
        "bytes",
        "lower",
        "Mean of the object-store usage samples during the replicate, minus the starting usage.",
    ),
    MetricDef(
        "object_store.spilled_bytes",
        "bytes",
        "lower",
        "Bytes spilled to external storage during the replicate (difference of the "
        "raylet's cumulative spilled counter).",
    ),
    MetricDef(
        "object_store.leaked_bytes",
        "bytes",
        "lower",
        "Object-store usage after the replicate drained, minus the starting usage.",
    ),
    MetricDef(
        "object_store.inflight_bound_bytes",
        "bytes",
        None,
        "What the batches in flight should hold in the store: pipeline max_in_flight x "
        "(mean compressed batch bytes + mean parsed output bytes per batch), both means "
        "over the batches the replicate completed; parsed output bytes are the Arrow "
        "buffer bytes of the outputs a batch's parse task hands the shards "
        "(ParseStats.output_bytes). Null for the regex strategy (its record lists are "
        "not sized) and when no batch completed.",
    ),
    MetricDef(
        "object_store.peak_over_bound",
        "ratio",
        "lower",
        "object_store.peak_bytes (already net of the store's usage just before the "
        "replicate started) divided by object_store.inflight_bound_bytes; null when "
        "either is.",
    ),
    MetricDef(
        "detection.ttd_p50_s",
        "s",
        "lower",
        "Median over detected anomalies of time-to-detect: wall time the alert was "
        "recorded minus the planned emit time of the first anomalous batch.",
        gated=True,
    ),
    MetricDef(
        "detection.ttd_max_s",
        "s",
        "lower",
        "Largest time-to-detect (planned emit basis) over detected anomalies.",
    ),
    MetricDef(
        "detection.ttd_actual_p50_s",
        "s",
        "lower",
        "Median time-to-detect measured from the actual (not planned) emit time of "
        "the first anomalous batch; hides coordinated omission, reported for contrast.",
    ),
    MetricDef(
        "detection.delay_over_oracle_s",
        "s",
        "lower",
        "Median over detected anomalies of time-to-detect minus the earliest possible "
        "detection: the planned emit time of the batch after which an exact offline "
        "detector with the same settings fires.",
    ),
    MetricDef(
        "detection.delay_over_oracle_p99_s",
        "s",
        "lower",
        "99th percentile (linear interpolation) over detected anomalies of the same "
        "delay over the earliest possible detection.",
    ),
    MetricDef(
        "detection.recall",
        "ratio",
        "higher",
        "Injected anomalies matched by at least one alert of the same kind and key "
        "overlapping the injection, divided by anomalies injected (1 when none injected).",
    ),
    MetricDef(
        "detection.precision",
        "ratio",
        "higher",
        "Alerts matching an injected anomaly divided by all alerts (1 when no alerts).",
    ),
    MetricDef(
        "detection.false_alerts",
        "count",
        "lower",
        "Alerts that match no injected anomaly.",
    ),
    MetricDef(
        "latency.batch_p50_s",
        "s",
        "lower",
        "Median over batches of planned emit time to the time its aggregation "
        "completed on every shard.",
        gated=True,
    ),
    MetricDef(
        "latency.batch_p99_s",
        "s",
        "lower",
        "99th percentile of the same batch latency.",
    ),
    MetricDef(
        "integrity.lines_emitted",
        "lines",
        None,
        "Lines in the batches the runner emitted.",
    ),
    MetricDef(
        "integrity.lines_parsed",
        "lines",
        None,
        "Lines the parse tasks turned into rows that reached the aggregators.",
    ),
    MetricDef(
        "integrity.lines_rejected",
        "lines",
        None,
        "Lines rejected as malformed, plus the lines of batches rejected whole.",
    ),
    MetricDef(
        "integrity.ok",
        "bool",
        "higher",
        "1 when emitted == parsed + rejected, merged shard counts equal the exact "
        "reference and no alert was lost or duplicated; else 0.",
    ),
    MetricDef(
        "shards.imbalance",
        "ratio",
        "lower",
        "Max over shards of lines aggregated divided by the mean over shards (1 is "
        "perfect balance).",
    ),
    MetricDef(
        "resources.cpu_percent",
        "%",
        None,
        "Mean CPU use of the driver and every Ray process (psutil, 100 = one core).",
    ),
    MetricDef(
        "resources.cpu_busy_fraction",
        "ratio",
        None,
        "resources.cpu_percent divided by 100 x logical cores: the fraction of the "
        "machine's CPU time the run used.",
    ),
    MetricDef(
        "resources.cpu_us_per_line",
        "us/line",
        "lower",
        "CPU time of the driver and every Ray process (the resources.cpu_percent samples, "
        "each the mean over the interval since the one before) within the steady-state "
        "window, as far as the samples cover it, in microseconds, divided by the lines "
        "completed in that span: the pipeline's cost per line, which does not count time "
        "spent waiting for a core. NaN without samples (samplers off) or when no batch "
        "completed in the covered span.",
    ),
    MetricDef(
        "resources.rss_peak_bytes",
        "bytes",
        "lower",
        "Highest sampled sum of resident memory of the driver and every Ray process.",
    ),
    MetricDef(
        "backlog.max_batches",
        "batches",
        "lower",
        "Most batches whose planned emit time had passed but which were not yet "
        "emitted, sampled at every emit.",
    ),
    MetricDef(
        "lateness.p99_s",
        "s",
        "lower",
        "99th percentile over batches of actual emit time minus planned emit time.",
    ),
    MetricDef(
        "harness.sampler_failures",
        "count",
        None,
        "Samples the harness's probes (object store, resources) failed to take; "
        "non-zero means the series have gaps.",
    ),
    MetricDef(
        "harness.sampler_cpu_s",
        "s",
        None,
        "CPU time the sampling thread spent in its probes (the harness's own cost).",
    ),
    MetricDef(
        "harness.sampler_cpu_share",
        "ratio",
        None,
        "harness.sampler_cpu_s divided by the CPU seconds the driver and every Ray "
        "process used during the replicate (resources.cpu_percent integrated over its "
        "sample times): the share of the run's CPU the harness's samplers took.",
    ),
    MetricDef(
        "generation.build_s",
        "s",
        None,
        "Time spent building the payload (generating and compressing) before the run.",
    ),
)

METRICS: dict[str, MetricDef] = {d.name: d for d in _DEFS}


class UnknownMetric(KeyError):
    """A metric name not in the vocabulary."""


def get(name: str) -> MetricDef:
    """The definition of ``name``; raises :class:`UnknownMetric` with the known names."""
    try:
        return METRICS[name]
    except KeyError:
        raise UnknownMetric(
            f"unknown metric {name!r} (known: {', '.join(sorted(METRICS))})"
        ) from None


def is_known(name: str) -> bool:
    return name in METRICS
