"""Drawing and rendering the generator's lines, one batch at a time.

:class:`Renderer` draws lines in blocks of ``_BLOCK``, each from its own random
stream, and renders any range of them as one batch (:mod:`logpipe.generate`
states what this makes deterministic).

Lines are rendered column-wise with numpy and ``pyarrow.compute`` (no Python loop
per line). Two formats, both read by :mod:`logpipe.parse`:

* combined, extended with two trailing fields::

    {ip} - {user} [{DD/Mon/YYYY:HH:MM:SS +0000}] "{method} {path} {protocol}" {status}
    {bytes} "{referer}" "{user_agent}" {request_time_s:.3f} {service}

* JSON, one object per line with keys ``ip user time method path protocol status
  bytes referer user_agent request_time service`` (``time`` ISO 8601 UTC, ms).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from logpipe import schema
from logpipe.traffic import (
    ANON_SHARE,
    METHODS,
    OK_STATUS,
    PROTOCOLS,
    REFERER_SHARE,
    REFERERS,
    SCAN_STATUS,
    SCANNER_AGENT,
    SERVER_ERROR_STATUS,
    USER_AGENTS,
    Catalog,
    random_ips,
)

if TYPE_CHECKING:
    from logpipe.generate import GeneratorConfig, PlannedInjection

_ANON_IPS = 2000
_BLOCK = 8192  # lines per random stream
_LATENCY_SIGMA = 0.6
_QUERY_SHARE = 0.1
_MAX_LATENCY_MS = 120_000  # request times are capped like a proxy timeout


@dataclass(frozen=True)
class RawBatch:
    """One uncompressed batch of lines and its planned event-time span."""

    index: int
    raw: bytes
    line_count: int
    first_ms: int
    last_ms: int
    planned_emit_s: float


def _table(pairs: tuple[tuple[int, float], ...]) -> tuple[np.ndarray, np.ndarray]:
    cdf = np.cumsum([w for _, w in pairs])
    return np.array([c for c, _ in pairs]), cdf / cdf[-1]


def _pick(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


def _by_change(values: np.ndarray, fmt: str) -> pa.Array:
    """strftime of sorted epoch values, formatting each distinct value once."""
    change = np.empty(len(values), dtype=bool)
    change[:1] = True
    np.not_equal(values[1:], values[:-1], out=change[1:])
    uniq = pa.array(values[change])
    return pc.take(pc.strftime(uniq, format=fmt), pa.array(np.cumsum(change) - 1))


def _str(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


class Renderer:
    """Draws and renders batches; holds the lookup tables built once per stream."""

    def __init__(
        self, config: GeneratorConfig, cat: Catalog, plan: list[PlannedInjection], ems: np.ndarray
    ) -> None:
        self.config, self.cat, self.plan, self.ems = config, cat, plan, ems
        self._cached: tuple[int, dict[str, np.ndarray]] | None = None
        n_users = len(cat.user_ids)
        attackers = dict(sorted({p.target: p.truth.key for p in plan if p.kind == "user_activity"}
                                .items()))  # fmt: skip
        self.attacker_user = 1 + n_users  # row of attacker 0 in the user table
        self.attacker_ip = n_users + _ANON_IPS
        extra_ips = random_ips(np.random.default_rng([config.seed, 4]), _ANON_IPS + len(attackers))
        self.users = pa.array(["-", *cat.user_ids, *attackers.values()])
        self.ips = pa.array([*cat.user_ips, *extra_ips])
        self.agents = pa.array([*USER_AGENTS, SCANNER_AGENT])
        self.referers, self.protocols = pa.array(REFERERS), pa.array(PROTOCOLS)
        self.methods = pa.array([METHODS[m] for m in cat.endpoint_method])
        parts = [(*t.split("{id}"), "", "")[:3] for t in cat.templates]
        self.parts = [pa.array(col) for col in zip(*parts)]
        self.n_ids = np.array([t.count("{id}") for t in cat.templates])
        self.services = pa.array([cat.services[s] for s in cat.endpoint_service])
        # Per-value tables that fold the line's constant text into one piece each.
        self.combined = {
            "head": pc.binary_join_element_wise('] "', self.methods, " ", self.parts[0], ""),
            "protocol": pc.binary_join_element_wise(" ", self.protocols, '" ', ""),
            "referer": pc.binary_join_element_wise(' "', self.referers, '" "', ""),
            "agent": pc.binary_join_element_wise(self.agents, '" ', ""),
            "tail": pc.binary_join_element_wise(" ", self.services, "\n", ""),
        }
        ms = np.arange(_MAX_LATENCY_MS + 1)
        frac = pc.utf8_lpad(_str(ms % 1000), width=3, padding="0")
        self.seconds = pc.binary_join_element_wise(_str(ms // 1000), frac, ".")
        self.ok, self.err, self.scan = (
            _table(OK_STATUS),
            _table(SERVER_ERROR_STATUS),
            _table(SCAN_STATUS),
        )

    def _rows(self, lo: int, hi: int) -> dict[str, np.ndarray]:
        """Drawn fields of lines ``[lo, hi)``, assembled from their blocks."""
        parts = []
        for block in range(lo // _BLOCK, (hi - 1) // _BLOCK + 1):
            if self._cached is None or self._cached[0] != block:
                ems = self.ems[block * _BLOCK : (block + 1) * _BLOCK]
                self._cached = (block, self._draw(block, ems))
            base = block * _BLOCK
            sl = slice(max(lo, base) - base, min(hi, base + _BLOCK) - base)
            parts.append({k: v[sl] for k, v in self._cached[1].items()})
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _draw(self, block: int, ems: np.ndarray) -> dict[str, np.ndarray]:
        cat, n = self.cat, len(ems)
        rng = np.random.default_rng([self.config.seed, 1, block])
        rank = _pick(cat.user_cdf, rng.random(n))
        anon = rng.random(n) < ANON_SHARE
        d = {
            "ems": ems,
            "ep": _pick(cat.endpoint_cdf, rng.random(n)),
            "user": np.where(anon, 0, rank + 1),
            "ip": np.where(anon, len(cat.user_ids) + rng.integers(0, _ANON_IPS, n), rank),
            "ua": np.where(anon, rng.integers(0, len(USER_AGENTS), n), cat.user_agent[rank]),
            "ref": np.where(rng.random(n) < REFERER_SHARE, rng.integers(1, len(REFERERS), n), 0),
            "proto": (rng.random(n) < 0.3).astype(np.int64),
            "id1": rng.integers(1, 100_000, n),
            "id2": rng.integers(1, 100_000, n),
            "page": np.where(rng.random(n) < _QUERY_SHARE, rng.integers(1, 50, n), 0),
            "u_err": rng.random(n),
            "u_code": rng.random(n),
            "z_lat": rng.standard_normal(n),
            "z_bytes": rng.standard_normal(n),
            "json": rng.random(n) < self.config.json_fraction,
        }
        p5, lat_mult, scan = self._inject(block, d)
        self._finish(d, p5, lat_mult, scan)
        return d

    def _inject(self, block: int, d: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        n = len(d["ems"])
        p5 = np.full(n, self.config.error_5xx_rate)
        lat_mult, scan = np.ones(n), np.zeros(n, dtype=bool)
        rng = np.random.default_rng([self.config.seed, 2, block])
        for p in self.plan:
            window = (d["ems"] >= p.start_ms) & (d["ems"] < p.end_ms)
            if not window.any():
                continue
            if p.kind == schema.ERROR_RATE:
                p5[window & (self.cat.endpoint_service[d["ep"]] == p.target)] = p.intensity
            elif p.kind == schema.LATENCY:
                lat_mult[window & (d["ep"] == p.target)] *= p.intensity
            else:
                # A scanner: uniform over every endpoint, own ip and tool user agent.
                sel = window & (rng.random(n) < p.intensity)
                d["ep"][sel] = rng.integers(0, len(self.cat.templates), int(sel.sum()))
                d["user"][sel] = self.attacker_user + p.target
                d["ip"][sel] = self.attacker_ip + p.target
                d["ua"][sel] = len(USER_AGENTS)
                d["ref"][sel] = 0
                scan |= sel
        return p5, lat_mult, scan

    def _finish(self, d: dict[str, np.ndarray], p5: np.ndarray, mult: np.ndarray,
                scan: np.ndarray) -> None:  # fmt: skip
        ep, u = d["ep"], d["u_code"]
        status = np.where(d["u_err"] < p5, self.err[0][_pick(self.err[1], u)],
                          self.ok[0][_pick(self.ok[1], u)])  # fmt: skip
        status = np.where(scan, self.scan[0][_pick(self.scan[1], u)], status)
        size = self.cat.endpoint_bytes[ep] * np.exp(0.5 * d["z_bytes"])
        size = np.where(status >= 400, 300.0 * np.exp(0.3 * d["z_bytes"]), size)
        size = np.where((status == 204) | (status == 304), 0.0, size)
        lat = self.cat.endpoint_latency_s[ep] * np.exp(_LATENCY_SIGMA * d["z_lat"]) * mult
        d["status"], d["bytes"] = status, np.rint(size).astype(np.int64)
        d["lat_ms"] = np.minimum(np.rint(lat * 1000.0), _MAX_LATENCY_MS).astype(np.int64)
        d["page"] = np.where(self.cat.endpoint_method[ep] == 0, d["page"], 0)

    def _shared(self, d: dict[str, np.ndarray]) -> dict[str, pa.Array]:
        """String columns both formats render the same way."""
        n_ids = self.n_ids[d["ep"]]
        query = pc.binary_join_element_wise("?page=", _str(d["page"]), "")
        return {
            "ip": pc.take(self.ips, pa.array(d["ip"])),
            "user": pc.take(self.users, pa.array(d["user"])),
            "id1": pc.if_else(pa.array(n_ids >= 1), _str(d["id1"]), ""),
            "id2": pc.if_else(pa.array(n_ids >= 2), _str(d["id2"]), ""),
            "query": pc.if_else(pa.array(d["page"] > 0), query, ""),
            "status": _str(d["status"]),
            "bytes": _str(d["bytes"]),
            "rt": pc.take(self.seconds, pa.array(d["lat_ms"])),
        }

    def _combined(self, d: dict[str, np.ndarray]) -> pa.Array:
        c, ep = self._shared(d), pa.array(d["ep"])
        when = _by_change((d["ems"] // 1000).astype("datetime64[s]"), "%d/%b/%Y:%H:%M:%S +0000")
        t = self.combined
        return pc.binary_join_element_wise(
            c["ip"], " - ", c["user"], " [", when, pc.take(t["head"], ep), c["id1"],
            pc.take(self.parts[1], ep), c["id2"], pc.take(self.parts[2], ep), c["query"],
            pc.take(t["protocol"], pa.array(d["proto"])), c["status"], " ", c["bytes"],
            pc.take(t["referer"], pa.array(d["ref"])), pc.take(t["agent"], pa.array(d["ua"])),
            c["rt"], pc.take(t["tail"], ep), "",
        )  # fmt: skip

    def _json(self, d: dict[str, np.ndarray]) -> pa.Array:
        c, ep = self._shared(d), pa.array(d["ep"])
        path = [pc.take(self.parts[0], ep), c["id1"], pc.take(self.parts[1], ep), c["id2"],
                pc.take(self.parts[2], ep), c["query"]]  # fmt: skip
        values = {
            "ip": c["ip"],
            "user": c["user"],
            "time": _by_change(d["ems"].astype("datetime64[ms]"), "%Y-%m-%dT%H:%M:%SZ"),
            "method": pc.take(self.methods, ep),
            "path": pc.binary_join_element_wise(*path, ""),
            "protocol": pc.take(self.protocols, pa.array(d["proto"])),
            "status": c["status"],
            "bytes": c["bytes"],
            "referer": pc.take(self.referers, pa.array(d["ref"])),
            "user_agent": pc.take(self.agents, pa.array(d["ua"])),
            "request_time": c["rt"],
            "service": pc.take(self.services, ep),
        }
        items: list[Any] = []
        for i, (k, v) in enumerate(values.items()):
            q = "" if k in ("status", "bytes", "request_time") else '"'
            items += [f'{"{" if i == 0 else ","}"{k}":{q}', v, q]
        return pc.binary_join_element_wise(*items, "}\n", "")

    def render(self, index: int, lo: int, hi: int, emit_s: float) -> RawBatch:
        """Batch ``index``: lines ``[lo, hi)`` of the stream."""
        d = self._rows(lo, hi)
        ems, is_json = d["ems"], d["json"]
        if not is_json.any():
            lines = self._combined(d)
        elif is_json.all():
            lines = self._json(d)
        else:
            parts = [self._combined({k: v[~is_json] for k, v in d.items()}),
                     self._json({k: v[is_json] for k, v in d.items()})]  # fmt: skip
            # Rows were split by format; put them back in event order.
            order = np.argsort(is_json, kind="stable")
            lines = pc.take(pa.concat_arrays(parts), pa.array(np.argsort(order, kind="stable")))
        # The joined array's data buffer already holds the batch text: copy it once.
        off = np.frombuffer(lines.buffers()[1], dtype=np.int32)
        start, end = int(off[lines.offset]), int(off[lines.offset + len(lines)])
        raw = lines.buffers()[2][start:end].to_pybytes()
        return RawBatch(index, raw, len(ems), int(ems[0]), int(ems[-1]), emit_s)
