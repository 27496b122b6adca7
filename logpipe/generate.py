"""Seeded, deterministic access-log generator with anomaly injection and ground truth.

Same seed and settings give byte-identical output. Lines are drawn in fixed blocks
of 8192, each from its own random stream (``[seed, 1, block]``), so the content does
not depend on ``batch_lines`` or ``codec`` (a batch-size sweep replays the same
lines) and the iterator and the in-memory form produce the same bytes. Injections
draw from a separate stream, so the baseline traffic outside an injection is the
same with or without it.

Lines are rendered column-wise with numpy and ``pyarrow.compute`` (no Python loop
per line). Two formats, both read by :mod:`logpipe.parse`:

* combined, extended with two trailing fields::

    {ip} - {user} [{DD/Mon/YYYY:HH:MM:SS +0000}] "{method} {path} {protocol}" {status}
    {bytes} "{referer}" "{user_agent}" {request_time_s:.3f} {service}

* JSON, one object per line with keys ``ip user time method path protocol status
  bytes referer user_agent request_time service`` (``time`` ISO 8601 UTC, ms).
"""

from __future__ import annotations

import gzip
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import zstandard

from logpipe import schema
from logpipe.batch import CODECS, Batch, make_batch

# 2026-01-01T00:00:00Z in epoch milliseconds.
DEFAULT_START_MS = 1_767_225_600_000
# Bounds of ``GeneratorConfig.event_speed`` (event seconds per stream second).
MIN_EVENT_SPEED = 0.01
MAX_EVENT_SPEED = 1000.0

DEFAULT_INTENSITY = {
    schema.ERROR_RATE: 0.40,  # 5xx share of the service during the injection
    schema.LATENCY: 10.0,  # latency multiplier of the endpoint
    schema.USER_ACTIVITY: 0.08,  # share of all traffic issued by the new user
}

SERVICE_NAMES = (
    "checkout", "auth", "catalog", "search", "cart", "payments", "inventory", "shipping",
    "reviews", "recommendations", "notifications", "profile", "orders", "pricing", "media",
    "gateway",
)  # fmt: skip
_RESOURCES = (
    "users", "orders", "items", "products", "carts", "sessions", "payments", "invoices",
    "reviews", "addresses", "shipments", "coupons", "images", "tokens", "accounts", "messages",
)  # fmt: skip
_SUBRESOURCES = ("items", "history", "status", "settings", "lines", "refunds", "comments", "events")
_STATIC = ("/", "/health", "/login", "/static/app.js", "/static/app.css", "/favicon.ico")
METHODS = ("GET", "POST", "PUT", "DELETE")
PROTOCOLS = ("HTTP/1.1", "HTTP/2.0")
OK_STATUS = ((200, 0.80), (201, 0.03), (204, 0.02), (301, 0.005), (302, 0.02), (304, 0.06),
             (400, 0.01), (401, 0.01), (403, 0.005), (404, 0.035), (429, 0.005))  # fmt: skip
SERVER_ERROR_STATUS = ((500, 0.5), (502, 0.2), (503, 0.2), (504, 0.1))
SCAN_STATUS = ((401, 0.45), (403, 0.35), (404, 0.1), (200, 0.1))
ANON_SHARE = 0.2  # lines with user "-"
REFERER_SHARE = 0.45  # lines with a referer other than "-"
REFERERS = (
    "-", "https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/",
    "https://shop.example.com/", "https://shop.example.com/cart", "https://shop.example.com/search",
    "https://t.co/", "https://www.facebook.com/", "https://news.ycombinator.com/",
    "https://www.reddit.com/", "https://mail.google.com/", "android-app://com.example.shop/",
)  # fmt: skip
_CHROME = "Mozilla/5.0 ({}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{} Safari/537.36"
_FIREFOX = "Mozilla/5.0 ({}; rv:{v}) Gecko/20100101 Firefox/{v}"
_SAFARI = "Mozilla/5.0 ({}) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{} Safari/605.1.15"
_WIN, _MAC = "Windows NT 10.0; Win64; x64", "Macintosh; Intel Mac OS X 10_15_7"
_LINUX, _IPHONE = "X11; Linux x86_64", "iPhone; CPU iPhone OS 17_5 like Mac OS X"
USER_AGENTS = (
    *(_CHROME.format(os, v) for os in (_WIN, _MAC, _LINUX) for v in ("124.0.0.0", "125.0.0.0",
                                                                     "126.0.0.0", "127.0.0.0")),
    *(_FIREFOX.format(os, v=v) for os in (_WIN, _MAC, _LINUX) for v in ("126.0", "127.0")),
    *(_SAFARI.format(os, v) for os in (_MAC, _IPHONE) for v in ("17.4.1", "17.5")),
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/125.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "okhttp/4.12.0", "curl/8.5.0", "Go-http-client/2.0",
)  # fmt: skip
SCANNER_AGENT = "python-requests/2.31.0"


def endpoint_pool() -> tuple[str, ...]:
    """Every endpoint template a service may expose (``{id}`` marks numeric segments)."""
    api = [f"/api/v1/{r}" for r in _RESOURCES] + [f"/api/v1/{r}/{{id}}" for r in _RESOURCES]
    for r in _RESOURCES:
        for s in _SUBRESOURCES:
            api += [f"/api/v1/{r}/{{id}}/{s}", f"/api/v1/{r}/{{id}}/{s}/{{id}}"]
    return (*_STATIC, *api)


_ANON_IPS = 2000
_BLOCK = 8192  # lines per random stream
_LATENCY_SIGMA = 0.6
_QUERY_SHARE = 0.1
_MAX_LATENCY_MS = 120_000  # request times are capped like a proxy timeout


def _check(cond: bool, name: str, msg: str, value: Any) -> None:
    if not cond:
        raise ValueError(f"{name}: {msg}, got {value!r}")


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Injection:
    """An anomaly injected during ``[start_s, start_s + duration_s)`` of the stream.

    Seconds are stream offsets (the axis of ``offsets_s``); they become event
    time through :func:`event_ms`, so with ``event_speed`` k an injection at 3 s
    lies 3k event seconds after ``start_ms``.

    ``key`` is a service (error_rate), an endpoint key ``"service /template"``
    (latency) or a user id (user_activity); None picks a busy one from the seed.
    ``intensity`` defaults to :data:`DEFAULT_INTENSITY` for the kind.
    """

    kind: str
    start_s: float
    duration_s: float
    key: str | None = None
    intensity: float | None = None

    def __post_init__(self) -> None:
        _check(self.kind in schema.ANOMALY_KINDS, "kind", "unknown anomaly kind", self.kind)
        _check(_finite(self.start_s) and self.start_s >= 0, "start_s", "must be >= 0", self.start_s)
        ok = _finite(self.duration_s) and self.duration_s > 0
        _check(ok, "duration_s", "must be > 0", self.duration_s)
        if self.key is not None:
            ok = isinstance(self.key, str) and bool(self.key) and '"' not in self.key
            _check(ok, "key", "must be a non-empty string without quotes", self.key)
            if self.kind == schema.USER_ACTIVITY:
                _check(" " not in self.key, "key", "a user id has no spaces", self.key)
        if self.intensity is not None:
            x = self.intensity
            bound = math.inf if self.kind == schema.LATENCY else 1.0
            _check(_finite(x) and 0 < x <= bound, "intensity", f"must be in (0, {bound}]", x)

    @property
    def resolved_intensity(self) -> float:
        return DEFAULT_INTENSITY[self.kind] if self.intensity is None else float(self.intensity)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Injection:
        return cls(**d)


@dataclass(frozen=True)
class GroundTruth:
    """An injected anomaly: kind, key and event-time window ``[start_ms, end_ms)``."""

    kind: str
    key: str
    start_ms: int
    end_ms: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GroundTruth:
        return cls(str(d["kind"]), str(d["key"]), int(d["start_ms"]), int(d["end_ms"]))


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything that determines the generated bytes (besides the offsets)."""

    seed: int = 0
    batch_lines: int = 10_000
    codec: str = "zstd"
    json_fraction: float = 0.0
    n_services: int = 8
    endpoints_per_service: int = 20
    n_users: int = 10_000
    user_skew: float = 1.1
    endpoint_skew: float = 1.1
    error_5xx_rate: float = 0.015
    start_ms: int = DEFAULT_START_MS
    # Event seconds per stream second: 1 is real time; k > 1 packs k seconds of
    # event time (windows, detector baselines) into each second of the schedule.
    event_speed: float = 1.0
    injections: tuple[Injection, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        def is_int(x: Any) -> bool:
            return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

        _check(is_int(self.seed) and self.seed >= 0, "seed", "must be an int >= 0", self.seed)
        ok = is_int(self.batch_lines) and self.batch_lines > 0
        _check(ok, "batch_lines", "must be an int > 0", self.batch_lines)
        _check(self.codec in CODECS, "codec", f"must be one of {CODECS}", self.codec)
        ok = _finite(self.json_fraction) and 0 <= self.json_fraction <= 1
        _check(ok, "json_fraction", "must be in [0, 1]", self.json_fraction)
        ok = is_int(self.n_services) and 1 <= self.n_services <= 256
        _check(ok, "n_services", "must be an int in [1, 256]", self.n_services)
        pool = len(endpoint_pool())
        ok = is_int(self.endpoints_per_service) and 1 <= self.endpoints_per_service <= pool
        _check(
            ok,
            "endpoints_per_service",
            f"must be an int in [1, {pool}]",
            self.endpoints_per_service,
        )
        ok = is_int(self.n_users) and 1 <= self.n_users <= 500_000
        _check(ok, "n_users", "must be an int in [1, 500000]", self.n_users)
        for name in ("user_skew", "endpoint_skew"):
            v = getattr(self, name)
            _check(_finite(v) and 0 <= v <= 10, name, "must be in [0, 10]", v)
        v = self.error_5xx_rate
        _check(_finite(v) and 0 <= v <= 1, "error_5xx_rate", "must be in [0, 1]", v)
        ok = is_int(self.start_ms) and self.start_ms >= 0
        _check(ok, "start_ms", "must be an int >= 0", self.start_ms)
        v = self.event_speed
        ok = _finite(v) and MIN_EVENT_SPEED <= v <= MAX_EVENT_SPEED
        _check(ok, "event_speed", f"must be in [{MIN_EVENT_SPEED:g}, {MAX_EVENT_SPEED:g}]", v)
        injections = tuple(self.injections)
        for inj in injections:
            _check(isinstance(inj, Injection), "injections", "items must be Injection", inj)
        object.__setattr__(self, "injections", injections)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["injections"] = [asdict(i) for i in self.injections]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeneratorConfig:
        fields = dict(d)
        fields["injections"] = tuple(Injection.from_dict(i) for i in d.get("injections", ()))
        return cls(**fields)


@dataclass(frozen=True)
class Catalog:
    """The traffic model derived from a config: services, endpoints, users, weights."""

    services: tuple[str, ...]
    templates: tuple[str, ...]  # per global endpoint index
    endpoint_service: np.ndarray  # endpoint index -> service index
    endpoint_cdf: np.ndarray  # cumulative traffic share over endpoints
    endpoint_method: np.ndarray  # index into METHODS
    endpoint_latency_s: np.ndarray  # median latency: per-service median x endpoint factor
    endpoint_bytes: np.ndarray  # median response size
    user_ids: tuple[str, ...]  # by popularity rank
    user_cdf: np.ndarray
    user_ips: tuple[str, ...]  # per user rank
    user_agent: np.ndarray  # per user rank, index into USER_AGENTS

    def endpoint_keys(self) -> list[str]:
        svc = self.endpoint_service
        return [schema.endpoint_key(self.services[svc[i]], t) for i, t in enumerate(self.templates)]

    def service_share(self) -> np.ndarray:
        p = np.diff(self.endpoint_cdf, prepend=0.0)
        return np.bincount(self.endpoint_service, weights=p, minlength=len(self.services))


def _zipf_cdf(n: int, skew: float) -> np.ndarray:
    w = np.arange(1, n + 1, dtype=np.float64) ** -skew
    cdf = np.cumsum(w / w.sum())
    cdf[-1] = 1.0
    return cdf


def _service_names(n: int) -> tuple[str, ...]:
    base = len(SERVICE_NAMES)
    return tuple(
        SERVICE_NAMES[i % base] + (f"-{i // base + 1}" if i >= base else "") for i in range(n)
    )


def _ips(rng: np.random.Generator, n: int) -> tuple[str, ...]:
    octets = rng.integers(1, 255, size=(n, 4))
    return tuple(f"{a}.{b}.{c}.{d}" for a, b, c, d in octets.tolist())


def _methods(rng: np.random.Generator, templates: list[str]) -> np.ndarray:
    u = rng.random(len(templates))
    # Collections take GET/POST, items GET/PUT/DELETE, static pages GET only.
    on_item = np.array([t.endswith("{id}") for t in templates])
    on_api = np.array([t.startswith("/api/") for t in templates])
    collection = np.where(u < 0.75, 0, 1)
    item = np.select([u < 0.7, u < 0.88], [0, 2], 3)
    return np.where(on_api, np.where(on_item, item, collection), 0)


def build_catalog(config: GeneratorConfig) -> Catalog:
    """The deterministic traffic model for ``config`` (same seed, same catalog)."""
    rng = np.random.default_rng([config.seed, 0])
    n_svc, per = config.n_services, config.endpoints_per_service
    pool = endpoint_pool()
    templates = [pool[j] for _ in range(n_svc) for j in rng.choice(len(pool), per, replace=False)]
    # Services get mildly uneven traffic; endpoints within a service are Zipf-skewed
    # in a seeded order so the busiest endpoint is not always the first template.
    svc_w = np.arange(1, n_svc + 1, dtype=np.float64) ** -0.5
    svc_w /= svc_w.sum()
    ep_w = np.diff(_zipf_cdf(per, config.endpoint_skew), prepend=0.0)
    weights = np.concatenate([svc_w[s] * ep_w[rng.permutation(per)] for s in range(n_svc)])
    cdf = np.cumsum(weights)
    cdf[-1] = 1.0
    svc_median = np.exp(rng.uniform(np.log(0.015), np.log(0.2), n_svc))
    n_ep = n_svc * per
    ep_factor = np.exp(rng.uniform(np.log(0.5), np.log(2.0), n_ep))
    ids = rng.choice(900_000, config.n_users, replace=False) + 100_000
    browsers = len(USER_AGENTS) - 5  # bots and tools are only used by anonymous clients
    return Catalog(
        services=_service_names(n_svc),
        templates=tuple(templates),
        endpoint_service=np.repeat(np.arange(n_svc), per),
        endpoint_cdf=cdf,
        endpoint_method=_methods(rng, templates),
        endpoint_latency_s=np.repeat(svc_median, per) * ep_factor,
        endpoint_bytes=np.exp(rng.uniform(np.log(200), np.log(20_000), n_ep)),
        user_ids=tuple(f"u{i}" for i in ids.tolist()),
        user_cdf=_zipf_cdf(config.n_users, config.user_skew),
        user_ips=_ips(rng, config.n_users),
        user_agent=rng.integers(0, browsers, config.n_users),
    )


@dataclass(frozen=True)
class PlannedInjection:
    """An injection with its key resolved to a catalog index and its window in epoch ms."""

    kind: str
    target: int  # service index, endpoint index, or attacker row in the user table
    start_ms: int
    end_ms: int
    intensity: float
    truth: GroundTruth


def _default_key(cat: Catalog, kind: str, nth: int, seed: int) -> str:
    rng = np.random.default_rng([seed, 3, schema.ANOMALY_KINDS.index(kind)])
    if kind == schema.ERROR_RATE:
        top = np.argsort(-cat.service_share(), kind="stable")[: min(3, len(cat.services))]
        return cat.services[rng.permutation(top)[nth % len(top)]]
    if kind == schema.LATENCY:
        share = np.diff(cat.endpoint_cdf, prepend=0.0)
        top = np.argsort(-share, kind="stable")[: min(5, len(share))]
        return cat.endpoint_keys()[rng.permutation(top)[nth % len(top)]]
    # A new user: 7-digit ids never collide with the 6-digit usual users.
    return f"u{int(rng.integers(1_000_000, 10_000_000)) + nth}"


def plan_injections(config: GeneratorConfig, cat: Catalog) -> list[PlannedInjection]:
    """Resolve keys and windows of the config's injections (deterministic)."""
    seen: dict[str, int] = {}
    planned = []
    ep_index = {k: i for i, k in enumerate(cat.endpoint_keys())}
    attackers: dict[str, int] = {}
    for inj in config.injections:
        key = inj.key
        if key is None:
            key = _default_key(cat, inj.kind, seen.get(inj.kind, 0), config.seed)
            seen[inj.kind] = seen.get(inj.kind, 0) + 1
        if inj.kind == schema.ERROR_RATE:
            _check(key in cat.services, "injections", "unknown service", key)
            target = cat.services.index(key)
        elif inj.kind == schema.LATENCY:
            _check(key in ep_index, "injections", "unknown endpoint key", key)
            target = ep_index[key]
        else:
            target = attackers.setdefault(key, len(attackers))
        ms_per_s = 1000.0 * config.event_speed
        start = config.start_ms + round(inj.start_s * ms_per_s)
        end = config.start_ms + round((inj.start_s + inj.duration_s) * ms_per_s)
        truth = GroundTruth(inj.kind, key, start, end)
        intensity = inj.resolved_intensity
        planned.append(PlannedInjection(inj.kind, target, start, end, intensity, truth))
    return planned


def ground_truth(config: GeneratorConfig) -> list[GroundTruth]:
    """The ground truth of ``config``'s injections, without generating lines."""
    return [p.truth for p in plan_injections(config, build_catalog(config))]


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


class _Renderer:
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
        extra_ips = _ips(np.random.default_rng([config.seed, 4]), _ANON_IPS + len(attackers))
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


@dataclass
class GeneratedStream:
    """A fully built payload: compressed batches plus what the harness needs to score."""

    batches: list[Batch]
    truth: list[GroundTruth]
    planned_emit_s: np.ndarray  # per batch: offset of its last line
    lines: int
    raw_bytes: int
    build_s: float


def event_ms(config: GeneratorConfig, offsets_s: np.ndarray) -> np.ndarray:
    """Event time (epoch ms) of each line: ``start_ms + floor(offset * event_speed * 1000)``."""
    offsets = np.asarray(offsets_s, dtype=np.float64)
    if offsets.ndim != 1:
        raise ValueError(f"offsets_s: must be one-dimensional, got shape {offsets.shape}")
    if len(offsets) and not (np.isfinite(offsets).all() and offsets[0] >= 0):
        raise ValueError("offsets_s: must be finite and >= 0")
    if len(offsets) > 1 and np.any(np.diff(offsets) < 0):
        raise ValueError("offsets_s: must be nondecreasing")
    # The epsilon keeps 0.001 * 1000 = 0.99999... from flooring to the previous ms.
    scaled = offsets * (1000.0 * config.event_speed)
    return config.start_ms + np.floor(scaled + 1e-6).astype(np.int64)


def iter_raw_batches(config: GeneratorConfig, offsets_s: np.ndarray) -> Iterator[RawBatch]:
    """Yield uncompressed batches of ``config.batch_lines`` lines, in order."""
    ems = event_ms(config, offsets_s)
    offsets = np.asarray(offsets_s, dtype=np.float64)
    cat = build_catalog(config)
    renderer = _Renderer(config, cat, plan_injections(config, cat), ems)
    step = config.batch_lines
    for index, lo in enumerate(range(0, len(ems), step)):
        hi = min(lo + step, len(ems))
        yield renderer.render(index, lo, hi, float(offsets[hi - 1]))


def generate(
    config: GeneratorConfig,
    offsets_s: np.ndarray,
    clock: Callable[[], float] = time.perf_counter,
) -> GeneratedStream:
    """Build every batch in memory (compressed with ``config.codec``)."""
    t0 = clock()
    batches: list[Batch] = []
    emit: list[float] = []
    lines = raw_bytes = 0
    for rb in iter_raw_batches(config, offsets_s):
        batches.append(
            make_batch(rb.index, rb.raw, rb.line_count, rb.first_ms, rb.last_ms, config.codec)
        )
        emit.append(rb.planned_emit_s)
        lines += rb.line_count
        raw_bytes += len(rb.raw)
    return GeneratedStream(
        batches=batches,
        truth=ground_truth(config),
        planned_emit_s=np.array(emit, dtype=np.float64),
        lines=lines,
        raw_bytes=raw_bytes,
        build_s=clock() - t0,
    )


@dataclass(frozen=True)
class WrittenLog:
    """What :func:`write_log` wrote."""

    path: Path
    truth_path: Path
    lines: int
    raw_bytes: int
    truth: list[GroundTruth]


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...
    def close(self) -> None: ...


def _open_sink(path: Path, raw: IO[bytes]) -> _Sink:
    if path.suffix == ".gz":
        # mtime=0 and no file name keep the output byte-identical across runs.
        return gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
    if path.suffix == ".zst":
        return zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False)
    return raw


def write_log(path: str | Path, config: GeneratorConfig, offsets_s: np.ndarray) -> WrittenLog:
    """Write plain lines to ``path`` (gzip/zstd by ``.gz``/``.zst``) and ``<path>.truth.json``."""
    path = Path(path)
    lines = raw_bytes = 0
    with open(path, "wb") as raw:
        sink = _open_sink(path, raw)
        for rb in iter_raw_batches(config, offsets_s):
            sink.write(rb.raw)
            lines += rb.line_count
            raw_bytes += len(rb.raw)
        if sink is not raw:
            sink.close()
    truth = ground_truth(config)
    truth_path = path.with_name(path.name + ".truth.json")
    doc = {
        "kind": "logbench.truth",
        "lines": lines,
        "raw_bytes": raw_bytes,
        "config": config.to_dict(),
        "truth": [t.to_dict() for t in truth],
    }
    truth_path.write_text(json.dumps(doc, indent=2) + "\n")
    return WrittenLog(path, truth_path, lines, raw_bytes, truth)


def load_truth(path: str | Path) -> list[GroundTruth]:
    """Read the ground truth from a ``.truth.json`` file written by :func:`write_log`."""
    doc = json.loads(Path(path).read_text())
    return [GroundTruth.from_dict(t) for t in doc["truth"]]
