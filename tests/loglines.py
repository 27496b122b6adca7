"""What a generated line looks like, shared by the generator and renderer tests."""

from __future__ import annotations

import re

import numpy as np

from logpipe.rate import Constant

COMBINED = re.compile(
    r"^(?P<ip>\d{1,3}(?:\.\d{1,3}){3}) - (?P<user>-|u\d{6,7}) "
    r"\[(?P<ts>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000)\] "
    r'"(?P<method>[A-Z]+) (?P<path>/[^ "]*) (?P<protocol>HTTP/\d\.\d)" '
    r'(?P<status>\d{3}) (?P<bytes>\d+) "(?P<referer>[^"]*)" "(?P<ua>[^"]+)" '
    r"(?P<rt>\d+\.\d{3}) (?P<service>[a-z-]+\d*)$"
)
JSON_KEYS = [
    "ip",
    "user",
    "time",
    "method",
    "path",
    "protocol",
    "status",
    "bytes",
    "referer",
    "user_agent",
    "request_time",
    "service",
]
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def stream_offsets(rate: float = 4000.0, seconds: float = 5.0) -> np.ndarray:
    """Stream offsets of ``rate`` lines per second for ``seconds``."""
    return Constant(rate).line_offsets(seconds)


def path_template(path: str) -> str:
    """What the parser does: drop the query, numeric segments become {id}."""
    return "/".join("{id}" if s.isdigit() else s for s in path.split("?", 1)[0].split("/"))
