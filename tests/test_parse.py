"""Parsing: fields, rejection rules, accounting, both strategies agreeing, Ray task."""

from __future__ import annotations

import json
import pickle
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logpipe.batch import Batch, BatchMeta, make_batch
from logpipe.parse import (
    REASONS,
    ParseOptions,
    ParseStats,
    endpoint_of,
    escape_control,
    output_buffer_bytes,
    parse_and_route,
    parse_batch,
    parse_task,
)
from logpipe.schema import DEFAULT_SERVICE, PARSED_SCHEMA
from logpipe.windows import AGGREGATED_COLUMNS

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
HYPO = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def combined(
    ip: str = "10.1.2.3",
    user: str = "alice",
    ts: str = "01/Jan/2026:00:00:01 +0000",
    request: str = "GET /users/123?page=2 HTTP/1.1",
    status: str = "200",
    nbytes: str = "512",
    referer: str = "https://example.com/",
    ua: str = UA,
    ext: str = " 0.123 checkout",
) -> str:
    return f'{ip} - {user} [{ts}] "{request}" {status} {nbytes} "{referer}" "{ua}"{ext}'


def json_line(**over: Any) -> str:
    obj: dict[str, Any] = {
        "ip": "10.9.8.7",
        "user": "bob",
        "time": "2026-01-01T00:00:01.234Z",
        "method": "POST",
        "path": "/orders/42/items",
        "protocol": "HTTP/2.0",
        "status": 503,
        "bytes": 77,
        "referer": "-",
        "user_agent": "curl/8.5",
        "request_time": 1.5,
        "service": "orders",
    }
    obj.update(over)
    return json.dumps({k: v for k, v in obj.items() if v is not _MISSING})


_MISSING = object()


def batch_of(
    lines: list[str | bytes], codec: str = "zstd", terminate: bool = True, batch_id: int = 3
) -> Batch:
    parts = [x.encode() if isinstance(x, str) else x for x in lines]
    raw = b"\n".join(parts) + (b"\n" if terminate and parts else b"")
    return make_batch(batch_id, raw, len(parts), 0, 0, codec)


def run(batch: Batch, strategy: str, **opts: Any) -> tuple[ParseStats, list[dict[str, Any]]]:
    stats, out = parse_batch(batch, ParseOptions(strategy=strategy, **opts))
    if strategy == "arrow":
        assert isinstance(out, pa.Table)
        assert out.schema == PARSED_SCHEMA
        return stats, out.to_pylist()
    assert isinstance(out, list)
    return stats, out


def epoch_ms(y: int, mo: int, d: int, h: int, mi: int, s: int, ms: int = 0, off: int = 0) -> int:
    dt = datetime(y, mo, d, h, mi, s, ms * 1000, tzinfo=timezone(timedelta(minutes=off)))
    return int(dt.timestamp() * 1000)


STRATS = pytest.mark.parametrize("strategy", ["arrow", "regex"])

# --------------------------------------------------------------------------- fields


@STRATS
def test_combined_extended_fields(strategy: str) -> None:
    stats, rows = run(batch_of([combined()]), strategy)
    assert (stats.lines, stats.parsed, stats.rejected) == (1, 1, 0)
    assert rows == [
        {
            "ip": "10.1.2.3",
            "user": "alice",
            "event_ms": epoch_ms(2026, 1, 1, 0, 0, 1),
            "method": "GET",
            "path": "/users/123?page=2",
            "protocol": "HTTP/1.1",
            "status": 200,
            "bytes": 512,
            "referer": "https://example.com/",
            "user_agent": UA,
            "latency_s": 0.123,
            "service": "checkout",
            "endpoint": "/users/{id}",
            "status_class": 2,
        }
    ]


@STRATS
def test_real_combined_line_without_extension(strategy: str) -> None:
    line = combined(user="-", nbytes="-", status="404", ext="", request="HEAD / HTTP/1.0")
    _, rows = run(batch_of([line, line + "\r"]), strategy)
    assert len(rows) == 2
    for row in rows:
        assert row["latency_s"] is None
        assert row["service"] == DEFAULT_SERVICE
        assert (row["user"], row["bytes"], row["status_class"]) == ("-", 0, 4)


@STRATS
@pytest.mark.parametrize(
    ("tz", "off"), [("+0000", 0), ("+0130", 90), ("-0500", -300), ("+1400", 840), ("-0045", -45)]
)
def test_timezone_offsets_convert_to_utc(strategy: str, tz: str, off: int) -> None:
    _, rows = run(batch_of([combined(ts=f"29/Feb/2024:23:59:59 {tz}")]), strategy)
    assert rows[0]["event_ms"] == epoch_ms(2024, 2, 29, 23, 59, 59, off=off)


@STRATS
def test_json_fields_and_defaults(strategy: str) -> None:
    lines = [
        json_line(),
        json_line(time="2026-01-01T02:00:01.5+02:00", user=None, service=""),
        json_line(time="01/Jan/2026:00:00:01 -0100", request_time=_MISSING, bytes=_MISSING),
        json_line(time="2026-01-01 00:00:01", protocol=_MISSING, referer=_MISSING),
    ]
    stats, rows = run(batch_of(lines), strategy)
    assert stats.parsed == 4, stats
    first = rows[0]
    assert first["event_ms"] == epoch_ms(2026, 1, 1, 0, 0, 1, 234)
    assert (first["status"], first["status_class"], first["latency_s"]) == (503, 5, 1.5)
    assert (first["service"], first["endpoint"], first["bytes"]) == (
        "orders",
        "/orders/{id}/items",
        77,
    )
    assert rows[1]["event_ms"] == epoch_ms(2026, 1, 1, 0, 0, 1, 500)
    assert (rows[1]["user"], rows[1]["service"]) == ("-", DEFAULT_SERVICE)
    assert rows[2]["event_ms"] == epoch_ms(2026, 1, 1, 1, 0, 1)
    assert (rows[2]["latency_s"], rows[2]["bytes"]) == (None, 0)
    assert rows[3]["event_ms"] == epoch_ms(2026, 1, 1, 0, 0, 1)
    assert (rows[3]["protocol"], rows[3]["referer"]) == ("-", "-")


@STRATS
def test_escaped_quotes_hostile_text_and_order_of_mixed_lines(strategy: str) -> None:
    tricky_ua = 'Evil \\"quoted\\" <script>alert(1)</script> \x1b[31m\u202e'
    lines = [
        json_line(path="/a/1"),
        combined(ua=tricky_ua),
        combined(request="GET /b/2 HTTP/1.1"),
        json_line(path="/c/3"),
    ]
    stats, rows = run(batch_of(lines), strategy)
    assert stats.parsed == 4
    assert [r["path"] for r in rows] == ["/a/1", "/users/123?page=2", "/b/2", "/c/3"]
    assert rows[1]["user_agent"] == tricky_ua


@pytest.mark.parametrize(
    ("path", "endpoint"),
    [
        ("/users/123", "/users/{id}"),
        ("/users/123/orders/456?x=1?y", "/users/{id}/orders/{id}"),
        ("/a/1/2/3/4", "/a/{id}/{id}/{id}/{id}"),
        ("/x/550e8400-e29b-41d4-a716-446655440000/y", "/x/{id}/y"),
        ("/blob/deadbeefdeadbeef00", "/blob/{id}"),
        ("/v2/items", "/v2/items"),
        ("/", "/"),
        ("/search?q=1", "/search"),
    ],
)
def test_endpoint_template(path: str, endpoint: str) -> None:
    assert endpoint_of(path) == endpoint
    _, rows = run(batch_of([combined(request=f"GET {path} HTTP/1.1")]), "arrow")
    assert rows[0]["endpoint"] == endpoint


# --------------------------------------------------------------------------- rejections


REJECTS: list[tuple[str | bytes, str]] = [
    ("", "empty"),
    (b"ab\x00cd", "nul_byte"),
    (b"caf\xc3 \xff", "bad_utf8"),
    ("{not json", "bad_json"),
    ('{"a": 1} {"b": 2}', "bad_json"),
    (json_line(status="200"), "malformed"),
    (json_line(ip=_MISSING), "malformed"),
    (json_line(bytes=-1), "malformed"),
    (json_line(time="yesterday"), "bad_timestamp"),
    (json_line(status=99), "bad_status"),
    ("just some text", "malformed"),
    (combined(ext=" 0.1"), "malformed"),
    (combined(ext=" 1.2.3 svc"), "malformed"),
    (combined(ts="01/Jan/2026:00:00:01"), "malformed"),
    (combined(ts="30/Feb/2026:00:00:01 +0000"), "bad_timestamp"),
    (combined(ts="01/Foo/2026:00:00:01 +0000"), "bad_timestamp"),
    (combined(ts="01/Jan/2026:24:00:01 +0000"), "bad_timestamp"),
    (combined(status="700"), "bad_status"),
    (combined(nbytes="1" * 19), "malformed"),
]


@STRATS
@pytest.mark.parametrize(("line", "reason"), REJECTS)
def test_rejection_reason(strategy: str, line: str | bytes, reason: str) -> None:
    stats, rows = run(batch_of([combined(), line]), strategy)
    assert (stats.parsed, stats.rejected, rows[0]["ip"]) == (1, 1, "10.1.2.3")
    assert stats.reasons == {reason: 1}
    (dead,) = stats.dead_letters
    assert (dead.batch_id, dead.line_no, dead.reason) == (3, 2, reason)


@STRATS
def test_long_lines_rejected_without_harming_neighbours(strategy: str) -> None:
    huge = combined(ua="x" * (4 << 20))
    stats, _ = run(batch_of([combined(), huge, combined()]), strategy)
    assert (stats.parsed, stats.reasons) == (2, {"too_long": 1})
    assert len(stats.dead_letters[0].sample) == 200
    small = ParseOptions(strategy=strategy, max_line_bytes=len(combined()) - 1)
    stats, _ = parse_batch(batch_of([combined(), combined(ext="")]), small)
    assert (stats.parsed, stats.reasons) == (1, {"too_long": 1})


def test_dead_letters_capped_escaped_and_in_line_order() -> None:
    lines = [f"\x1b]0;pwned\x07 bad line {i} \u202e" for i in range(30)]
    for strategy in ("arrow", "regex"):
        stats, _ = run(batch_of(lines), strategy, max_dead_letters=5)
        assert stats.rejected == 30
        assert [d.line_no for d in stats.dead_letters] == [1, 2, 3, 4, 5]
        assert stats.dead_letters[0].sample == "\\x1b]0;pwned\\x07 bad line 0 \\u202e"
        assert all("\x1b" not in d.sample for d in stats.dead_letters)


def test_escape_control() -> None:
    assert escape_control("a\x1b[2Jb\x00\r\n\t") == "a\\x1b[2Jb\\x00\\r\\n\\t"
    assert escape_control("x\u202ey\x9b") == "x\\u202ey\\x9b"
    assert escape_control("café 東京 <b>") == "café 東京 <b>"


@pytest.mark.parametrize("codec", ["zstd", "gzip"])
def test_truncated_and_corrupt_batches_rejected_whole(codec: str) -> None:
    good = batch_of([combined()] * 50, codec=codec)
    truncated = Batch(good.meta, good.payload[: len(good.payload) // 2].copy())
    garbage = Batch(good.meta, np.frombuffer(b"\x28\xb5\x2f\xfd" + b"junk" * 20, np.uint8))
    for bad in (truncated, garbage):
        for strategy in ("arrow", "regex"):
            stats, out = parse_batch(bad, ParseOptions(strategy=strategy))
            assert (stats.lines, stats.parsed, stats.rejected) == (50, 0, 50)
            assert stats.batch_error in ("truncated", "corrupt")
            assert stats.reasons == {stats.batch_error: 50}
            assert len(out) == 0


def test_bomb_and_line_count_mismatch_rejected_whole() -> None:
    good = batch_of([combined()] * 100)
    meta = good.meta
    bomb = Batch(BatchMeta(meta.batch_id, 100, 1000, 0, 0, "zstd"), good.payload)
    stats, out = parse_batch(bomb)
    assert (stats.rejected, stats.batch_error, out.num_rows) == (100, "bomb", 0)
    lying = Batch(BatchMeta(meta.batch_id, 99, meta.raw_bytes, 0, 0, "zstd"), good.payload)
    stats, out = parse_batch(lying, ParseOptions(strategy="regex"))
    assert (stats.lines, stats.rejected, stats.batch_error) == (99, 99, "line_count_mismatch")
    assert out == []


@STRATS
def test_final_unterminated_line_counts(strategy: str) -> None:
    stats, rows = run(batch_of([combined(), combined(user="zed")], terminate=False), strategy)
    assert (stats.lines, stats.parsed, rows[-1]["user"]) == (2, 2, "zed")


def test_json_block_with_bad_lines_falls_back_per_line() -> None:
    lines = [json_line(user=f"u{i}") for i in range(100)]
    lines[37] = '{"ip": "x", "status": 200'
    lines[80] = json_line(status=20.5)
    for strategy in ("arrow", "regex"):
        stats, rows = run(batch_of(lines), strategy)
        assert stats.reasons == {"bad_json": 1, "malformed": 1}
        assert [r["user"] for r in rows] == [f"u{i}" for i in range(100) if i not in (37, 80)]


def test_slowdown_knob_adds_cpu_time_per_parsed_line() -> None:
    batch = batch_of([combined()] * 200 + ["bad"])
    c0 = time.thread_time()
    stats, _ = parse_batch(batch, ParseOptions(test_slowdown_us_per_line=100.0))
    cpu_s = time.thread_time() - c0
    assert stats.parsed == 200
    # Floors, not speed claims: the spin is CPU time of this thread, so the wall
    # time and the CPU time both include it.
    assert cpu_s >= 200 * 100e-6
    assert stats.parse_s >= 200 * 100e-6


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"strategy": "pandas"}, "strategy:"),
        ({"max_dead_letters": -1}, "max_dead_letters:"),
        ({"max_line_bytes": 0}, "max_line_bytes:"),
        ({"test_slowdown_us_per_line": float("nan")}, "test_slowdown_us_per_line:"),
    ],
)
def test_options_validation(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}"):
        ParseOptions(**kwargs)


def test_stats_are_small_and_picklable() -> None:
    stats, _ = parse_batch(batch_of([combined(), "bad"] * 100))
    back = pickle.loads(pickle.dumps(stats))
    assert back == stats
    assert len(stats.dead_letters) == 20
    assert len(pickle.dumps(stats)) < 8192


# --------------------------------------------------------------------------- properties

_field_text = st.text(
    st.characters(blacklist_characters='"\\\n', blacklist_categories=("Cs",)), max_size=30
)
_token = st.text(
    st.characters(blacklist_characters=' "\n', blacklist_categories=("Cs",)),
    min_size=1,
    max_size=12,
)


@st.composite
def combined_lines(draw: st.DrawFn) -> str:
    day = draw(st.integers(0, 32))
    month = draw(st.sampled_from(["Jan", "Feb", "Dec", "jan", "Xyz"]))
    ts = (
        f"{day:02d}/{month}/{draw(st.integers(1, 9999)):04d}:{draw(st.integers(0, 25)):02d}:"
        f"{draw(st.integers(0, 61)):02d}:{draw(st.integers(0, 61)):02d} "
        f"{draw(st.sampled_from('+-'))}{draw(st.integers(0, 2400)):04d}"
    )
    rt = draw(st.sampled_from(["0.123", "-", "12", "1.", "x", "123456789.5"]))
    ext = draw(st.sampled_from(["", f" {rt} {draw(_token)}", "\r", " extra", f" {rt} a b"]))
    ua = draw(st.one_of(_field_text, st.just('with \\"escaped\\" quotes'), st.just('bad"quote')))
    path = draw(st.sampled_from(["/users/12", "/a/b?c=1", "/x/ffffffffffffffff1/9", "/"]))
    return combined(
        ip=draw(_token),
        user=draw(st.one_of(st.just("-"), _token)),
        ts=ts,
        request=f"{draw(st.sampled_from(['GET', 'POST']))} {path} HTTP/1.1",
        status=f"{draw(st.integers(0, 999)):03d}",
        nbytes=draw(st.sampled_from(["-", "0", "123456", "9" * 18])),
        referer=draw(_field_text),
        ua=ua,
        ext=ext,
    )


_json_values = st.one_of(
    st.none(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=8), st.booleans()
)


@st.composite
def json_lines(draw: st.DrawFn) -> str:
    over: dict[str, Any] = {}
    for key in draw(
        st.sets(
            st.sampled_from(["ip", "time", "status", "bytes", "request_time", "user", "service"]),
            max_size=2,
        )
    ):
        over[key] = draw(st.one_of(_json_values, st.just(_MISSING)))
    if draw(st.booleans()):
        over["time"] = draw(
            st.sampled_from(
                [
                    "2026-13-01T00:00:00Z",
                    "2026-01-01T00:00:00.123456789+05:30",
                    "2026-01-01T00:00:00-0800",
                ]
            )
        )
    return json_line(**over)


def _mutate(line: str, pos: int, junk: str) -> str:
    pos %= len(line) + 1
    return line[:pos] + junk + line[pos:]


any_line = st.one_of(
    combined_lines(),
    json_lines(),
    st.builds(
        _mutate,
        combined_lines(),
        st.integers(0, 400),
        st.sampled_from(['"', " ", "\\", "\r", "é", "{"]),
    ),
    st.builds(_mutate, json_lines(), st.integers(0, 400), st.sampled_from(['"', "}", ",", "\\"])),
    st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"")),
    st.text(max_size=40).map(lambda t: t.replace("\n", "")),
)


def _drop_timing(stats: ParseStats) -> ParseStats:
    return ParseStats(**{**stats.__dict__, "parse_s": 0.0})


@HYPO
@given(st.lists(any_line, max_size=25), st.booleans())
def test_strategies_produce_identical_output(lines: list[str | bytes], terminate: bool) -> None:
    batch = batch_of(lines, terminate=terminate)
    sa, table = parse_batch(batch, ParseOptions(strategy="arrow", max_dead_letters=100))
    sr, records = parse_batch(batch, ParseOptions(strategy="regex", max_dead_letters=100))
    assert _drop_timing(sa) == _drop_timing(sr)
    assert table.equals(pa.Table.from_pylist(records, schema=PARSED_SCHEMA))


@HYPO
@given(
    st.lists(st.one_of(st.binary(max_size=300), combined_lines().map(str.encode)), max_size=30),
    st.sampled_from(["arrow", "regex"]),
    st.sampled_from(["zstd", "gzip", "none"]),
)
def test_accounting_invariant_over_arbitrary_bytes(
    chunks: list[bytes], strategy: str, codec: str
) -> None:
    raw = b"\n".join(chunks)
    n = raw.count(b"\n") + (1 if raw and not raw.endswith(b"\n") else 0)
    batch = make_batch(0, raw, n, 0, 0, codec)
    stats, out = parse_batch(batch, ParseOptions(strategy=strategy, max_line_bytes=200))
    assert stats.lines == stats.parsed + stats.rejected == n
    assert sum(stats.reasons.values()) == stats.rejected
    assert set(stats.reasons) <= set(REASONS[1:])
    assert len(out) == stats.parsed
    assert stats.batch_error is None


# --------------------------------------------------------------------------- routing + Ray


def test_parse_and_route_splits_every_row_once() -> None:
    lines = [combined(ext=f" 0.1 svc{i % 5}") for i in range(50)] + ["bad"]
    out = parse_and_route(batch_of(lines), ParseOptions(), "by_service", 3)
    stats, shards = out[0], out[1:]
    assert len(shards) == 3
    assert sum(t.num_rows for t in shards) == stats.parsed == 50
    for table in shards:
        assert table.schema.names == list(AGGREGATED_COLUMNS)
    whole = parse_and_route(batch_of(lines), ParseOptions(), "by_service", 3, columns=None)
    for table, projected in zip(whole[1:], shards):
        assert table.schema == PARSED_SCHEMA
        assert table.select(list(AGGREGATED_COLUMNS)).equals(projected)


def _pickled_buffer_bytes(table: pa.Table) -> int:
    """Out-of-band buffer bytes of a protocol-5 pickle: what Ray puts in the store."""
    sizes: list[int] = []
    pickle.dumps(table, protocol=5, buffer_callback=lambda b: sizes.append(b.raw().nbytes))
    return sum(sizes)


def test_output_bytes_sums_the_routed_outputs_buffers() -> None:
    lines = [combined(ext=f" 0.1 svc{i % 5}") for i in range(200)] + ["bad"]
    stats, *shards = parse_and_route(batch_of(lines), ParseOptions(), "by_service", 3)
    assert stats.output_bytes == sum(t.get_total_buffer_size() for t in shards) > 0
    # The figure is what serialising the outputs actually carries.
    assert stats.output_bytes == sum(_pickled_buffer_bytes(t) for t in shards)
    whole = parse_and_route(batch_of(lines), ParseOptions(), "by_service", 3, columns=None)[0]
    assert whole.output_bytes > stats.output_bytes  # dropped columns are not counted
    assert parse_batch(batch_of(lines))[0].output_bytes == 0  # set by routing only


def test_output_buffer_bytes_counts_whole_buffers_of_a_slice() -> None:
    table = pa.table({"a": pa.array(np.arange(10_000, dtype=np.int64))}).slice(0, 10)
    # A slice pickles its whole buffer; nbytes would claim 80 bytes.
    assert output_buffer_bytes(table) == _pickled_buffer_bytes(table) == 80_000
    assert table.nbytes == 80


def test_output_bytes_is_zero_for_regex_records() -> None:
    lines = [combined(ext=f" 0.1 svc{i % 5}") for i in range(20)]
    opts = ParseOptions(strategy="regex")
    stats, *shards = parse_and_route(batch_of(lines), opts, "by_service", 2)
    assert sum(len(s) for s in shards) == stats.parsed == 20
    assert stats.output_bytes == 0


def test_generator_output_parses_completely() -> None:
    gen = pytest.importorskip("logpipe.generate")
    config = gen.GeneratorConfig(seed=1, batch_lines=500, json_fraction=0.3)
    stream = gen.generate(config, np.linspace(0, 5, 1000))
    for batch in stream.batches:
        sa, table = parse_batch(batch)
        _, records = parse_batch(batch, ParseOptions(strategy="regex"))
        assert (sa.parsed, sa.rejected) == (batch.meta.line_count, 0), sa.reasons
        assert table.equals(pa.Table.from_pylist(records, schema=PARSED_SCHEMA))
        # Combined lines carry whole seconds; JSON lines carry milliseconds.
        ems = table["event_ms"].to_numpy()
        assert ems.min() >= batch.meta.first_event_ms // 1000 * 1000
        assert ems.max() <= batch.meta.last_event_ms


@pytest.mark.ray
def test_parse_task_under_ray(ray_session: None) -> None:
    import ray

    lines = [combined(ext=f" 0.2 svc{i % 7}") for i in range(70)] + ["garbage"]
    ref = ray.put(batch_of(lines))
    refs = parse_task.options(num_returns=4).remote(ref, ParseOptions(), "by_service", 3)
    stats, *shards = ray.get(refs)
    assert (stats.parsed, stats.rejected, stats.reasons) == (70, 1, {"malformed": 1})
    assert sum(t.num_rows for t in shards) == 70
    seen: dict[str, int] = {}
    for i, table in enumerate(shards):
        for svc in table.column("service").to_pylist():
            assert seen.setdefault(svc, i) == i
    assert len(seen) == 7


@pytest.mark.parametrize("strategy", ["arrow", "regex"])
def test_warm_up_batch_is_one_good_line(strategy: str) -> None:
    from logpipe.parse import warm_up_batch

    batch = warm_up_batch()
    stats, out = parse_batch(batch, ParseOptions(strategy=strategy))
    assert (stats.lines, stats.parsed, stats.rejected) == (1, 1, 0)
    rows = out.to_pylist() if isinstance(out, pa.Table) else out
    assert rows[0]["event_ms"] == batch.meta.first_event_ms == batch.meta.last_event_ms
