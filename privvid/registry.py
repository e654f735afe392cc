"""Name -> backend registries, one per kind of processor.

Each kind (detector, inpainter, pose source, ...) owns one :class:`Registry`
declared in its package ``__init__``. Entries are ``"module:attribute"`` strings
so heavy backends (mediapipe, ultralytics, torch) are imported only when used.
Adding a backend is one new file plus one ``register`` line.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable

from privvid.errors import ConfigError


class UnknownBackend(ConfigError, KeyError):
    """A backend name that is neither registered nor an importable ``package.module:attr``."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class Registry:
    def __init__(self, kind: str, label: str | None = None) -> None:
        self.kind = kind
        self.label = label or f"{kind} backend"   # what an entry is called in messages
        self._entries: dict[str, str | Callable[..., Any]] = {}

    def register(self, name: str, target: str | Callable[..., Any]) -> None:
        """Register ``target`` (a factory or a lazy ``"pkg.mod:attr"`` path) as ``name``."""
        if name in self._entries:
            raise ValueError(f"{self.label} {name!r} is already registered")
        self._entries[name] = target

    def names(self) -> list[str]:
        return sorted(self._entries)

    def resolve(self, name: str) -> Callable[..., Any]:
        """The factory registered as ``name``; a ``"package.module:attr"`` name not registered
        here is imported directly, so a user's own backend works without editing privvid."""
        try:
            target = self._entries[name] if ":" not in name else self._entries.get(name, name)
        except KeyError:
            close = ([n for n in self.names() if n.lower() == name.lower()]   # BLUR: names are lower case
                     or difflib.get_close_matches(name, self.names(), n=1))
            raise UnknownBackend(f"unknown {self.label} {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                                 + f"; choose one of: {', '.join(self.names())}") from None
        if isinstance(target, str):
            module_name, _, attr = target.partition(":")
            try:
                target = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError) as exc:
                raise UnknownBackend(f"{self.label} {name!r} cannot be loaded: {exc}") from exc
            self._entries[name] = target
        return target

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.resolve(name)(*args, **kwargs)
