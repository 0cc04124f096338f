"""A typed config schema: each TOML table is a frozen dataclass whose fields carry their own check.

``setting(default, parse, hint)`` declares a key, ``required(parse, hint)`` a key
that must be present, ``table(cls)`` a sub-table read with its own dataclass and
``custom(default_factory, reader)`` a table read by a function of its own.
``read_table(cls, prefix, table, problems)`` turns a parsed TOML table into the
good values by key, appending one problem per bad, unknown or missing key, each
as 'key: what is wrong, got value (hint)' with a "did you mean" for misspelt
keys and names. Nothing stops at the first problem: the caller reports them all.

A check (``Parse``) takes the raw TOML value and returns the setting, or raises
ValueError('must be ...'); ``WrongName`` adds the likeliest meant name.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, field, fields
from typing import TYPE_CHECKING, Any, TypeVar

from protocol.errors import PollboxError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")
S = TypeVar("S", bound="DataclassInstance")
Parse = Callable[[Any], T]
"""Turns a raw TOML value into a setting, or raises ValueError('must be ...')."""
Reader = Callable[[str, Any, list[str]], T]
"""Reads a whole sub-table at a key, appending its problems: (key, raw table, problems) -> value."""


class WrongName(PollboxError, ValueError):
    """A value that is not one of the known names; ``near`` is the likeliest meant, if any."""

    def __init__(self, message: str, given: object, known: tuple[str, ...]) -> None:
        super().__init__(message)
        matches = difflib.get_close_matches(given, known, n=1) if isinstance(given, str) else []
        self.near = matches[0] if matches else None


# Checks -----------------------------------------------------------------------------------

def one_of(options: tuple[str, ...]) -> Parse[str]:
    def parse(v: Any) -> str:
        if v not in options:
            raise WrongName(f"must be one of {', '.join(options)}", v, options)
        return str(v)
    return parse


def text(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError("must be a non-empty string")
    return v


def int_from(low: int, high: int, what: str) -> Parse[int]:
    def parse(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise ValueError(f"must be {what} from {low} to {high}")
        return v
    return parse


def flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def names_from(known: tuple[str, ...], what: str) -> Parse[tuple[str, ...]]:
    """A non-empty list of names out of ``known``, duplicates dropped."""
    def parse(v: Any) -> tuple[str, ...]:
        if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
            raise ValueError(f"must be a non-empty list of {what} ({', '.join(known)})")
        for name in v:
            if name not in known:
                raise WrongName(f"lists {name!r}, not one of the {what} {', '.join(known)}", name, known)
        return tuple(dict.fromkeys(v))
    return parse


_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")


def host(v: Any) -> str:
    """An IP address or a syntactically valid host name."""
    name = text(v)
    try:
        ipaddress.ip_address(name)
    except ValueError:
        if len(name) > 253 or not _HOSTNAME.fullmatch(name):
            raise ValueError("must be an IP address or a host name") from None
    return name


def is_loopback(name: str) -> bool:
    """Whether ``name`` (an IP address or host name) can only be reached from this machine."""
    if name.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


# Fields ------------------------------------------------------------------------------------

def setting(default: T, parse: Parse[T], hint: str = "", *, names_key: bool = False) -> T:
    """A key with a default, its check and the hint shown with a problem.

    ``names_key`` says the check's ValueError already names the key (a nested table parsed whole).
    """
    return field(default=default, metadata={"parse": parse, "hint": hint, "names_key": names_key})


def required(parse: Parse[T], hint: str) -> T:
    """A key the table must have."""
    value: T = field(metadata={"parse": parse, "hint": hint, "names_key": False})
    return value


def table(cls: type[S]) -> S:
    """A sub-table read with its own dataclass schema."""
    return field(default_factory=cls, metadata={"table": cls})


def custom(default_factory: Callable[[], T], reader: Reader[T]) -> T:
    """A sub-table read by ``reader``, which appends its own problems."""
    return field(default_factory=default_factory, metadata={"reader": reader})


# Reading ------------------------------------------------------------------------------------

def unknown_key(key: str, known: list[str]) -> str:
    near = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else f" (known keys: {', '.join(sorted(known))})"
    return f"{key}: unknown key{hint}"


def read_table(cls: type[S], prefix: str, raw: Any, problems: list[str]) -> dict[str, Any]:
    """The good values of ``raw`` by key, read with ``cls``'s schema; each problem appended.

    ``prefix`` is the table's dotted key followed by a dot, or "" for the whole file.
    """
    if not isinstance(raw, dict):
        name = prefix.rstrip(".")
        problems.append(f"{name}: must be a table ([{name}])")
        return {}
    schema = {f.name: f for f in fields(cls)}
    good: dict[str, Any] = {}
    for key, value in raw.items():
        if key in schema:
            _read_one(schema[key], prefix + key, value, good, problems)
        else:
            problems.append(prefix + unknown_key(key, list(schema)))
    for f in schema.values():
        if is_required(f) and f.name not in raw:
            problems.append(f"{prefix}{f.name}: missing ({f.metadata['hint']})")
    return good


def is_required(f: Field[Any]) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _read_one(f: Field[Any], key: str, raw: Any, good: dict[str, Any], problems: list[str]) -> None:
    meta: Mapping[str, Any] = f.metadata
    if "table" in meta:
        good[f.name] = meta["table"](**read_table(meta["table"], key + ".", raw, problems))
    elif "reader" in meta:
        good[f.name] = meta["reader"](key, raw, problems)
    else:
        try:
            good[f.name] = meta["parse"](raw)
        except ValueError as exc:
            problems.append(str(exc) if meta["names_key"] else f"{key}: {exc}, got {raw!r}{_hint(exc, meta)}")


def _hint(exc: ValueError, meta: Mapping[str, Any]) -> str:
    near = getattr(exc, "near", None)
    if near:
        return f" (did you mean {near!r}?)"
    return f" ({meta['hint']})" if meta["hint"] else ""
