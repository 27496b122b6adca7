"""`logbench generate`: write a generated log stream and its ground truth (like flog)."""

from __future__ import annotations

import argparse
import sys

from logpipe import rate as rate_mod
from logpipe.generate import GeneratorConfig, Injection
from logpipe.logfile import write_log


class GenerateError(ValueError):
    """Bad ``generate`` arguments; the message names the flag."""


def parse_injection(text: str) -> Injection:
    """``KIND@START+DURATION`` (seconds), e.g. ``error_rate@20+10``."""
    try:
        kind, rest = text.split("@", 1)
        start, duration = rest.split("+", 1)
        return Injection(kind.strip(), float(start), float(duration))
    except ValueError as exc:
        raise GenerateError(f"--inject: {text!r}: {exc} (expected KIND@START+DURATION)") from None


def generate_file(args: argparse.Namespace) -> int:
    """Write ``args.output`` and ``<output>.truth.json``; one-line error and 2 on bad input."""
    try:
        injections = tuple(parse_injection(t) for t in args.inject)
        for inj in injections:
            if inj.start_s + inj.duration_s > args.duration:
                raise GenerateError(f"--inject: {inj.kind} ends after --duration {args.duration}")
        config = GeneratorConfig(
            seed=args.seed, json_fraction=args.json_fraction, injections=injections
        )
        offsets = rate_mod.Constant(args.rate).line_offsets(args.duration)
        written = write_log(args.output, config, offsets)
    except (GenerateError, ValueError, OSError) as exc:
        print(f"logbench: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    print(f"wrote {written.lines:,} lines ({written.raw_bytes:,} bytes) to {written.path}")
    print(f"ground truth: {written.truth_path}")
    return 0
