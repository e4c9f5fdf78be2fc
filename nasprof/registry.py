"""One way to register things: a ``Registry`` object per kind (spaces, presets, blocks, backends, boards,
search strategies, proxies), as timm's ``register_model`` and Optuna's samplers do it.

Built-ins register themselves when their package is imported (a decorator, or ``register(name, obj)``);
third-party ones come in through an entry-point group (``nasprof.spaces``, ``nasprof.backends``, ...), loaded
on first use. A duplicate or malformed name is an error, never a silent overwrite; an unknown name gets the
list of known ones. A registry is an object, not a module global dict, so tests can build their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, overload

from nasprof.errors import InputError, NasprofError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> object of one kind. ``kind`` names it in messages ("search space", "backend")."""

    def __init__(
        self,
        kind: str,
        *,
        entry_point_group: str | None = None,
        error: type[NasprofError] = InputError,
        normalize: Callable[[str], str] | None = None,
    ) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._error = error
        self._normalize = normalize
        self._group = entry_point_group
        self._entry_points_loaded = entry_point_group is None
        #: Plugins whose entry point failed to load: name -> why (they are not registered).
        self.load_errors: dict[str, str] = {}

    # -- registering ------------------------------------------------------------------------------------
    def check_name(self, name: str) -> str:
        """``name`` if it is lower-case letters, digits, ``-`` and ``_``; else ``ValueError``."""
        if not isinstance(name, str) or not name or name != name.lower() \
                or not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"malformed {self.kind} name {name!r}: use lower-case letters, digits, - and _")
        return name

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T, *, replace: bool = False) -> T: ...

    def register(self, name: str, obj: Any = None, *, replace: bool = False) -> Any:
        """Register ``obj`` under ``name``; used as a decorator when ``obj`` is omitted."""

        def deco(o: T) -> T:
            self.check_name(name)
            old = self._items.get(name)
            if old is not None and old is not o and not replace:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = o
            return o

        return deco if obj is None else deco(obj)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests; a plugin replacing a built-in on purpose). Unknown names are an error."""
        if name not in self._items:
            raise KeyError(f"{self.kind} {name!r} is not registered")
        del self._items[name]
        self.load_errors.pop(name, None)

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded or self._group is None:
            return
        self._entry_points_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self._group):
            if ep.name in self._items:
                continue  # built-ins win over a plugin of the same name
            try:
                self.register(ep.name, ep.load())
            except Exception as exc:  # a broken plugin must not break nasprof
                self.load_errors[ep.name] = f"{type(exc).__name__}: {exc}"
                self._broken(ep.name, ep.value, exc)

    def _broken(self, name: str, target: str, exc: Exception) -> None:
        """What a plugin that failed to load leaves behind (subclasses may register a stand-in that fails
        on use, so the name stays listed)."""

    # -- looking up -------------------------------------------------------------------------------------
    def get(self, name: str) -> T:
        """The object called ``name``; an unknown name is the registry's error, listing the known ones."""
        self._load_entry_points()
        key = self._normalize(name) if self._normalize is not None and isinstance(name, str) else name
        try:
            return self._items[key]
        except (KeyError, TypeError):
            broken = self.load_errors.get(str(key))
            if broken is not None:
                raise self._error(f"{self.kind} plugin {key!r} failed to load: {broken}") from None
            raise self._error(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._items[n]) for n in self.names()]

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())
