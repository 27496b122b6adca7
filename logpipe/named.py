"""Actors passed to other actors by name instead of by handle.

Ray cannot restart an actor whose constructor took another actor's handle once
that argument is gone (ray-project/ray#53727; Ray logs an error when such an
actor is created with ``max_restarts``). A name is a plain string, so a
restarted actor rebuilds itself from its arguments alone and looks the other
actor up when it first needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ActorName:
    """The name of an actor in the caller's Ray namespace."""

    name: str

    def resolve(self) -> Any:
        """The live actor's handle (``ValueError`` from Ray when no such actor exists)."""
        import ray

        return ray.get_actor(self.name)


def resolve(actor: Any) -> Any:
    """A handle for ``actor``: looked up when it is an :class:`ActorName`, else as given."""
    return actor.resolve() if isinstance(actor, ActorName) else actor
