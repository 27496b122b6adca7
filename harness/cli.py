"""`logbench`: the command line, a thin layer over :mod:`harness.api` and friends.

Exit status: 0 success, 1 regression, 2 usage or configuration error (one line
on stderr naming the field; nothing run or written), 3 thresholds failed,
4 invalid measurement, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness import api
from harness.console import (
    ProgressReporter,
    make_console,
    matrix_table,
    noise_line,
    safe,
    summary_table,
)
from harness.raysession import RayStartError

USAGE, INTERRUPTED = 2, 130


class CliError(Exception):
    """A usage or configuration error: printed as one line, exit status 2."""


def _fail(message: str, code: int = USAGE) -> int:
    first = safe(str(message).splitlines()[0] if str(message) else "error")
    print(f"logbench: error: {first}", file=sys.stderr)
    return code


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """Ctrl-C / SIGTERM set an event the runner checks; a second one aborts."""
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", help="scenario module, e.g. scenarios/smoke.py")
    p.add_argument("--variant", help="run one variant of a matrix")
    p.add_argument("--replicates", type=int, help="override measurement.replicates")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    p.add_argument("--address", help="attach to an existing Ray cluster")
    p.add_argument("--out", default=str(api.DEFAULT_OUT), help="directory for result files")
    p.add_argument("--replay", help="a log file (plain, .gz, .zst) replacing the generator")
    p.add_argument("--format", dest="replay_format", choices=("auto", "combined", "json"))


def _plan(args: argparse.Namespace) -> list[api.Planned]:
    from harness.scenario import ScenarioError

    if args.replicates is not None and args.replicates < 1:
        raise CliError(f"--replicates: must be >= 1 (got {args.replicates})")
    try:
        return api.plan(
            args.scenario,
            args.variant,
            args.overrides,
            args.replicates,
            args.replay,
            args.replay_format,
        )
    except ScenarioError as exc:
        raise CliError(str(exc)) from None


def _run_all(args: argparse.Namespace, planned: list[api.Planned]) -> list[tuple[Any, Path]]:
    """Run every planned variant, save each result, print summaries."""
    console = make_console()
    done: list[tuple[Any, Path]] = []
    with _stop_on_signals() as stop:
        for item in planned:
            label = item.scenario.name + (f"[{item.variant}]" if item.variant else "")
            reporter = ProgressReporter(console, label)
            result = api.run_planned(item, args.address, reporter, stop)
            path = api.save(result, args.out)
            console.print(summary_table(label, result.summary))
            noise = noise_line(
                result.metric_values("throughput.lines_per_s"),
                result.metric_values("throughput.offered_lines_per_s"),
            )
            if noise:
                console.print(noise)
            if not result.complete:
                console.print("[yellow]interrupted: partial result saved, marked incomplete")
            console.print(f"result: {path}")
            done.append((result, path))
            if stop.is_set():
                break
    if len(done) > 1:
        console.print(
            matrix_table((r.scenario.variant or r.scenario.name, r.summary) for r, _ in done)
        )
    return done


def cmd_run(args: argparse.Namespace) -> int:
    done = _run_all(args, _plan(args))
    return 0 if all(r.complete for r, _ in done) else INTERRUPTED


def cmd_list(args: argparse.Namespace) -> int:
    from harness.scenario import list_scenarios

    console = make_console()
    for entry in list_scenarios(Path(args.directory)):
        path, name, variants, description = entry[:4]
        line = f"{path}  {name}"
        if variants:
            line += f"  ({len(variants)} variants: {', '.join(map(str, variants))})"
        console.print(safe(line))
        if description:
            console.print("    " + safe(str(description).strip().splitlines()[0]))
    return 0


def _load(path: str) -> Any:
    from harness.results import ResultError, load_result

    try:
        return load_result(Path(path))
    except (ResultError, OSError) as exc:
        raise CliError(str(exc)) from None


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.compare import CompareError, compare, render_table, to_json

    base, cand = _load(args.baseline), _load(args.candidate)
    try:
        result = compare(
            base,
            cand,
            metrics=args.metric or None,
            tolerance=args.tolerance,
            confidence=args.confidence,
            normalize=args.normalize,
        )
    except CompareError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(to_json(result), indent=2))
    else:
        print(render_table(result))
    return 1 if result.regressed_gated() else 0


def cmd_gate(args: argparse.Namespace) -> int:
    from harness.gate import evaluate_gate
    from harness.results import write_result

    planned = _plan(args)
    if len(planned) != 1:
        raise CliError("gate: pick one variant with --variant")
    baseline = _load(args.baseline) if args.baseline and not args.update_baseline else None
    ((result, _path),) = _run_all(args, planned)
    thresholds = list(planned[0].scenario.thresholds)
    outcome = evaluate_gate(
        result,
        thresholds,
        baseline,
        args.normalize,
        args.tolerance,
        args.max_cv,
        metrics=args.metric or None,
    )
    console = make_console()
    for t in outcome.thresholds:
        mark = "ok  " if t.passed else "FAIL"
        console.print(f"{mark} {safe(t.expr)}  (value {t.value})")
    if outcome.comparison is not None:
        from harness.compare import render_table

        console.print(render_table(outcome.comparison))
    for reason in outcome.reasons:
        console.print(f"gate: {safe(reason)}")
    if args.update_baseline and args.baseline:
        if outcome.exit_code in (0, 1):
            target = Path(args.baseline)
            written = write_result(result, target.parent)
            written.replace(target)
            console.print(f"baseline updated: {target}")
        else:
            console.print("baseline NOT updated: the run did not pass its own checks")
    console.print(f"gate: exit {outcome.exit_code}")
    return outcome.exit_code


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report import write_report

    results = [_load(p) for p in args.results]
    written = write_report(results, Path(args.output), Path(args.png) if args.png else None)
    for path in written:
        print(path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from harness.export import FORMATS, export

    if args.format not in FORMATS:
        raise CliError(f"--format: unknown format {args.format!r} (known: {', '.join(FORMATS)})")
    text = export(_load(args.result), args.format)
    if args.output:
        Path(args.output).write_text(text)
    else:
        print(text)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from harness.demo import run_demo

    with _stop_on_signals() as stop:
        return run_demo(
            json_path=args.json,
            replay=args.replay,
            replay_format=args.replay_format,
            address=args.address,
            duration_s=args.duration,
            stop=stop,
        )


def cmd_generate(args: argparse.Namespace) -> int:
    from harness.generate_cmd import generate_file

    return generate_file(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {}

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> Any:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=fn)
        commands[name] = fn
        return p

    _add_run_options(add("run", cmd_run, "run a scenario and save its result"))
    p = add("list", cmd_list, "list scenarios and their variants")
    p.add_argument("directory", nargs="?", default="scenarios")
    p = add("compare", cmd_compare, "compare two result files metric by metric")
    p.add_argument("baseline")
    p.add_argument("candidate")
    _add_compare_options(p)
    p.add_argument("--metric", action="append", help="compare only these metrics")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("gate", cmd_gate, "run a scenario, check thresholds and the baseline")
    _add_run_options(p)
    _add_compare_options(p)
    p.add_argument("--baseline", help="baseline result file")
    p.add_argument("--update-baseline", action="store_true", help="write the run as baseline")
    p.add_argument("--max-cv", type=_fraction, default=0.25, help="erratic above this CV")
    p.add_argument("--metric", action="append", help="compare only these metrics")
    p = add("report", cmd_report, "write a self-contained HTML report")
    p.add_argument("results", nargs="+")
    p.add_argument("-o", "--output", default="report.html")
    p.add_argument("--png", help="also write each figure as PNG into this directory")
    p = add("export", cmd_export, "export a result for other dashboards")
    p.add_argument("result")
    p.add_argument("--format", required=True)
    p.add_argument("-o", "--output")
    p = add("demo", cmd_demo, "run the pipeline briefly with injected anomalies")
    p.add_argument("--json", help="write the demo summary as JSON")
    p.add_argument("--replay", help="a log file replacing the generator")
    p.add_argument("--format", dest="replay_format", choices=("auto", "combined", "json"))
    p.add_argument("--address", help="attach to an existing Ray cluster")
    p.add_argument("--duration", type=_positive, default=20.0, help="seconds of load")
    p = add("generate", cmd_generate, "write a generated log stream and its ground truth")
    _add_generate_options(p)
    for name, module, help_text in _PLUGGED:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=_lazy(module))
        _plugin_arguments(module, p)
    return parser


# Commands implemented in their own modules with add_arguments(parser) and run(args).
_PLUGGED = (
    ("peers", "harness.peers", "the pipeline against DuckDB, plain Python and naive Ray"),
    ("validate", "harness.validate", "validate the harness against known effects"),
    ("ab", "harness.ab", "a baseline git revision against the working tree, interleaved"),
)


def _lazy(module: str) -> Callable[[argparse.Namespace], int]:
    def call(args: argparse.Namespace) -> int:
        import importlib

        return int(importlib.import_module(module).run(args))

    return call


def _plugin_arguments(module: str, parser: argparse.ArgumentParser) -> None:
    import importlib

    importlib.import_module(module).add_arguments(parser)


def _add_compare_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tolerance", type=_fraction, default=0.05, help="effect size (0.05 = 5%%)")
    p.add_argument("--confidence", type=_fraction, default=0.90)
    p.add_argument("--normalize", action="store_true", help="divide throughput by calibration")


def _add_generate_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("output", help="file to write (.gz / .zst compress)")
    p.add_argument("--duration", type=_positive, default=60.0, help="seconds of event time")
    p.add_argument("--rate", type=_positive, default=10_000.0, help="lines per second")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json-fraction", type=_fraction, default=0.0)
    p.add_argument(
        "--inject",
        action="append",
        default=[],
        metavar="KIND@START+DURATION",
        help="e.g. error_rate@20+10 (seconds)",
    )


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0 (got {text})")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be within 0..1 (got {text})")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as exc:
        return _fail(str(exc))
    except RayStartError as exc:
        return _fail(f"cannot start Ray: {exc}")
    except BrokenPipeError:
        # `logbench compare --json | head`: the reader left; not an error of ours.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return _fail("interrupted", INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
