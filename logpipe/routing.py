"""Shard routing: which shard aggregates which parsed row.

``by_service`` and ``by_endpoint`` hash the row's key with CRC-32 (stable across
processes and runs, unlike Python's salted ``hash``), so one key always lands on
one shard and per-key aggregates never need a cross-shard merge. CRC-32 is
linear, so keys that differ in a character or two get related low bits (8 such
keys once filled only 3 of 4 shards); a murmur3 finalizer mixes it first.
``round_robin`` sends whole batches to ``batch_id % n_shards``: cheapest, but
every key is spread over all shards. ``single`` is one shard, no routing at all.

Hashing is done once per distinct key of a batch (dictionary encoding), never
per row, so routing a table stays vectorized.
"""

from __future__ import annotations

import zlib
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from logpipe.schema import DEFAULT_SERVICE, endpoint_key

STRATEGIES = ("single", "by_service", "by_endpoint", "round_robin")

# What a null key counts as, as in windows' reference aggregation.
_NULL_ENDPOINT = "-"

Output: TypeAlias = "pa.Table | list[dict[str, Any]]"


def shard_of(key: str, n_shards: int) -> int:
    """The shard of ``key``: mixed CRC-32 of its UTF-8 bytes, modulo ``n_shards``."""
    h = zlib.crc32(key.encode("utf-8", errors="surrogatepass"))
    h = ((h ^ (h >> 16)) * 0x85EBCA6B) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * 0xC2B2AE35) & 0xFFFFFFFF
    return (h ^ (h >> 16)) % n_shards


def validate(strategy: str, n_shards: int) -> None:
    """Raise ``ValueError`` (message starts with the field name) on a bad setting."""
    if strategy not in STRATEGIES:
        raise ValueError(
            f"sharding: unknown strategy {strategy!r} (expected one of {', '.join(STRATEGIES)})"
        )
    if isinstance(n_shards, bool) or not isinstance(n_shards, int) or n_shards < 1:
        raise ValueError(f"n_shards: must be an integer >= 1 (got {n_shards!r})")
    if strategy == "single" and n_shards != 1:
        raise ValueError(f"n_shards: strategy 'single' requires n_shards == 1 (got {n_shards})")


def split(output: Output, strategy: str, n_shards: int, batch_id: int) -> list[Output]:
    """Split one batch's parsed rows into ``n_shards`` outputs (empty where none).

    Every row lands in exactly one output; rows keep their relative order.
    """
    validate(strategy, n_shards)
    n_rows = output.num_rows if isinstance(output, pa.Table) else len(output)
    if strategy in ("single", "round_robin") or n_shards == 1 or n_rows == 0:
        target = batch_id % n_shards if strategy == "round_robin" else 0
        return [output if i == target else _empty_like(output) for i in range(n_shards)]
    if isinstance(output, pa.Table):
        return _split_table(output, _table_shards(output, strategy, n_shards), n_shards)
    return _split_records(output, strategy, n_shards)


def _empty_like(output: Output) -> Output:
    return output.schema.empty_table() if isinstance(output, pa.Table) else []


def _key_of(service: str | None, endpoint: str | None, strategy: str) -> str:
    service = service or DEFAULT_SERVICE
    if strategy == "by_service":
        return service
    return endpoint_key(service, endpoint if endpoint is not None else _NULL_ENDPOINT)


def _encode(table: pa.Table, name: str) -> tuple[np.ndarray, list[Any]]:
    """Dictionary codes of a column (nulls get a code) and the distinct values."""
    enc = pc.dictionary_encode(table.column(name).combine_chunks(), null_encoding="encode")
    return enc.indices.to_numpy(zero_copy_only=False), enc.dictionary.to_pylist()


def _table_shards(table: pa.Table, strategy: str, n_shards: int) -> np.ndarray:
    """Shard index of every row, hashing each distinct key once."""
    svc_codes, services = _encode(table, "service")
    if strategy == "by_service":
        lut = np.array([shard_of(_key_of(s, None, strategy), n_shards) for s in services])
        return lut[svc_codes]
    ep_codes, endpoints = _encode(table, "endpoint")
    pair = svc_codes.astype(np.int64) * max(len(endpoints), 1) + ep_codes
    uniq, inverse = np.unique(pair, return_inverse=True)
    n_ep = max(len(endpoints), 1)
    lut = np.array(
        [
            shard_of(_key_of(services[p // n_ep], endpoints[p % n_ep], strategy), n_shards)
            for p in uniq.tolist()
        ]
    )
    return lut[inverse]


def _split_table(table: pa.Table, shards: np.ndarray, n_shards: int) -> list[Output]:
    counts = np.bincount(shards, minlength=n_shards)
    if counts.max() == table.num_rows:  # one shard takes all: no copy
        only = int(np.argmax(counts))
        return [table if i == only else table.schema.empty_table() for i in range(n_shards)]
    # One stable sort, then one compact take per shard (slices of a shared table
    # would drag the whole batch's buffers into every shard's object).
    order = np.argsort(shards, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(counts)))
    out: list[Output] = []
    for i in range(n_shards):
        lo, hi = bounds[i], bounds[i + 1]
        out.append(table.take(pa.array(order[lo:hi])) if hi > lo else table.schema.empty_table())
    return out


def _split_records(records: list[dict[str, Any]], strategy: str, n_shards: int) -> list[Output]:
    out: list[list[dict[str, Any]]] = [[] for _ in range(n_shards)]
    memo: dict[tuple[Any, Any], int] = {}
    for rec in records:
        pair = (rec.get("service"), rec.get("endpoint") if strategy == "by_endpoint" else None)
        shard = memo.get(pair)
        if shard is None:
            shard = memo[pair] = shard_of(_key_of(*pair, strategy), n_shards)
        out[shard].append(rec)
    return list(out)
