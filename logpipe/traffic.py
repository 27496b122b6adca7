"""The generator's vocabulary: services, endpoints, statuses, user agents, and the
seeded catalog a stream draws from (which services, endpoints, users exist and
how popular each is)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from logpipe import schema

if TYPE_CHECKING:
    from logpipe.generate import GeneratorConfig

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


def random_ips(rng: np.random.Generator, n: int) -> tuple[str, ...]:
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
        user_ips=random_ips(rng, config.n_users),
        user_agent=rng.integers(0, browsers, config.n_users),
    )
