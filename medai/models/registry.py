"""Registries map names to builders, reject duplicates and suggest near matches for unknown names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from medai.errors import InvalidInputError, did_you_mean


@dataclass(frozen=True)
class Entry:
    """One registered builder and what it accepts."""

    name: str
    builder: Callable[..., Any]
    modality: str  # the batch key its input comes under, e.g. "image"
    description: str = ""
    defaults: dict = field(default_factory=dict)


class Registry:
    """Name -> builder. ``create(name, **kwargs)`` rebuilds the same object from a saved config."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, *, modality: str, description: str = "", **defaults):
        """Decorator that registers a class or factory under ``name``."""

        def decorate(builder):
            if name in self._entries:
                raise InvalidInputError(f"A {self.kind} named {name!r} is already registered.")
            self._entries[name] = Entry(name, builder, modality, description, defaults)
            return builder

        return decorate

    def get(self, name: str) -> Entry:
        if name not in self._entries:
            raise InvalidInputError(
                f"Unknown {self.kind} {name!r}; known: {', '.join(sorted(self._entries))}."
                f"{did_you_mean(name, self._entries)}"
            )
        return self._entries[name]

    def create(self, name: str, **kwargs):
        """Build the registered object with its defaults overridden by ``kwargs``."""
        entry = self.get(name)
        return entry.builder(**{**entry.defaults, **kwargs})

    def names(self, modality: str | None = None) -> list[str]:
        return sorted(n for n, e in self._entries.items() if modality is None or e.modality == modality)

    def __contains__(self, name: str) -> bool:
        return name in self._entries


NETWORKS = Registry("model")
