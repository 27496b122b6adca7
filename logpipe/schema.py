"""Shared vocabulary of the pipeline: parsed columns, anomaly kinds, dimensions.

Every stage agrees on these names; changing one is a schema change.
"""

from __future__ import annotations

import pyarrow as pa

# Columns of a parsed batch (Arrow), in order. ``event_ms`` is epoch milliseconds
# (UTC); ``latency_s`` is the request time in seconds; ``endpoint`` is the
# templated path (``/users/123`` -> ``/users/{id}``); ``status_class`` is
# ``status // 100``.
PARSED_SCHEMA = pa.schema(
    [
        ("ip", pa.string()),
        ("user", pa.string()),
        ("event_ms", pa.int64()),
        ("method", pa.string()),
        ("path", pa.string()),
        ("protocol", pa.string()),
        ("status", pa.int16()),
        ("bytes", pa.int64()),
        ("referer", pa.string()),
        ("user_agent", pa.string()),
        ("latency_s", pa.float64()),
        ("service", pa.string()),
        ("endpoint", pa.string()),
        ("status_class", pa.int8()),
    ]
)

PARSED_COLUMNS = tuple(PARSED_SCHEMA.names)

# Service name used when a real combined log line carries no service field.
DEFAULT_SERVICE = "default"

# Anomaly kinds, shared by the generator's ground truth, the detector's alerts
# and the harness's recall/precision.
ERROR_RATE = "error_rate"  # key: service
LATENCY = "latency"  # key: "service endpoint" (see endpoint_key)
USER_ACTIVITY = "user_activity"  # key: user id
ANOMALY_KINDS = (ERROR_RATE, LATENCY, USER_ACTIVITY)

# Aggregation dimensions kept by each shard.
DIM_SERVICE = "service"
DIM_ENDPOINT = "endpoint"
DIMENSIONS = (DIM_SERVICE, DIM_ENDPOINT)


def endpoint_key(service: str, endpoint: str) -> str:
    """The key of the endpoint dimension: service and templated endpoint."""
    return f"{service} {endpoint}"


def empty_table() -> pa.Table:
    """A parsed table with no rows."""
    return PARSED_SCHEMA.empty_table()
