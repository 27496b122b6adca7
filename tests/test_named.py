"""Actors passed by name: lookup, pass-through, and pipelines that use it."""

from __future__ import annotations

import pickle

import pytest
import ray

from logpipe.named import ActorName, resolve


@ray.remote(num_cpus=0)
class Echo:
    def hello(self) -> str:
        return "hello"


def test_resolve_passes_handles_and_none_through() -> None:
    marker = object()
    assert resolve(marker) is marker
    assert resolve(None) is None


def test_actor_name_is_a_small_plain_value() -> None:
    name = ActorName("logpipe-alerting-x")
    # What Ray stores as the constructor argument: a few bytes, never a handle.
    assert len(pickle.dumps(name)) < 200
    assert pickle.loads(pickle.dumps(name)) == name


def test_resolve_finds_the_named_actor(ray_session: None) -> None:
    actor = Echo.options(name="test-named-echo").remote()
    try:
        handle = resolve(ActorName("test-named-echo"))
        assert ray.get(handle.hello.remote()) == "hello"
    finally:
        ray.kill(actor)


def test_unknown_name_fails_loudly(ray_session: None) -> None:
    with pytest.raises(ValueError):
        ActorName("no-such-actor-here").resolve()
