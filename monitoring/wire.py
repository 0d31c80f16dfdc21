"""A JSON codec for pipewatch's own snapshot dataclasses, so one agent can feed other processes (mirror mode).

What `encode` turns into JSON-safe values and `decode` turns back, equal to the original:
- a dataclass: {"$": "module.Class", field: value, ...} (its init fields);
- an enum member: {"$e": "module.Class", "v": its value};
- a tuple: {"$t": [...]}; a list: a list; a set / frozenset: {"$s": [...]} / {"$fs": [...]};
- a mapping with only str keys: {"$d": {...}}; with other keys (ints, tuples): {"$p": [[key, value], ...]};
- a float that JSON cannot carry: {"$f": "nan" | "inf" | "-inf"}; a datetime: {"$dt": ISO 8601};
- None, bool, int, str and finite floats as they are (numpy scalars as the Python number they hold).

Decoding builds only the classes of `ALLOWED`: the dataclasses and enums of pipewatch's model modules, named
one by one here. A name from the wire is looked up in that table and nothing else: it is never imported,
and nothing is ever unpickled. Anything else is a WireError.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import numbers
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np


class WireError(ValueError):
    """A value that cannot be encoded, or a payload that is not one `encode` could have produced."""


def _model_classes() -> dict[str, type]:
    from collectors import flink_model, kafka_model, profiling_model, prometheus_model, schema_registry_model
    from collectors.kafka_status import Status
    from collectors.remote_agents import History, RemoteAgentSnapshot
    from monitoring.errors import ErrorEntry
    from monitoring.evaluation import Latency
    from monitoring.health import CollectorHealth, State
    from monitoring.store import Event, FeedRow
    from monitoring.summary import PipelineSummary

    classes: list[type] = [Status, History, RemoteAgentSnapshot, ErrorEntry, Latency, CollectorHealth, State, Event,
                           FeedRow, PipelineSummary]
    for module in (kafka_model, flink_model, schema_registry_model, profiling_model, prometheus_model):
        # Every dataclass a model module defines (not what it imports): these are what snapshots are made of.
        classes += [value for value in vars(module).values() if isinstance(value, type)
                    and value.__module__ == module.__name__ and dataclasses.is_dataclass(value)]
    return {f"{cls.__module__}.{cls.__qualname__}": cls for cls in classes}


_allowed: dict[str, type] | None = None
_fields: dict[type, tuple[str, ...]] = {}


def allowed() -> dict[str, type]:
    """name -> class of everything `decode` may build (built on first use: the model modules import a lot)."""
    global _allowed
    if _allowed is None:
        _allowed = _model_classes()
    return _allowed


def _name(cls: type) -> str:
    name = f"{cls.__module__}.{cls.__qualname__}"
    if allowed().get(name) is not cls:
        raise WireError(f"{name} is not a class the wire carries")
    return name


def _init_fields(cls: type) -> tuple[str, ...]:
    names = _fields.get(cls)
    if names is None:
        names = _fields[cls] = tuple(f.name for f in dataclasses.fields(cls) if f.init)
    return names


def encode(value: Any) -> Any:
    """`value` as JSON-safe data (json.dumps with allow_nan=False accepts it)."""
    if isinstance(value, enum.Enum):  # first: a str or int enum is a str or an int too
        return {"$e": _name(type(value)), "v": encode(value.value)}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return {"$f": "nan"}
        if math.isinf(value):
            return {"$f": "inf" if value > 0 else "-inf"}
        return float(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return encode(float(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"$": _name(type(value))}
        for name in _init_fields(type(value)):
            out[name] = encode(getattr(value, name))
        return out
    if isinstance(value, tuple):
        return {"$t": [encode(item) for item in value]}
    if isinstance(value, list):
        return [encode(item) for item in value]
    if isinstance(value, Mapping):
        if all(isinstance(key, str) for key in value):
            return {"$d": {key: encode(item) for key, item in value.items()}}
        return {"$p": [[encode(key), encode(item)] for key, item in value.items()]}
    if isinstance(value, frozenset):
        return {"$fs": [encode(item) for item in value]}
    if isinstance(value, set):
        return {"$s": [encode(item) for item in value]}
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    raise WireError(f"cannot encode a {type(value).__module__}.{type(value).__qualname__}")


_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def decode(data: Any) -> Any:
    """What `encode` was given, rebuilt; only classes of `allowed()` are built."""
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [decode(item) for item in data]
    if not isinstance(data, dict):
        raise WireError(f"unexpected {type(data).__name__} in the payload")
    if "$" in data:
        cls = allowed().get(data["$"]) if isinstance(data["$"], str) else None
        if cls is None or not dataclasses.is_dataclass(cls):
            raise WireError(f"{str(data['$'])[:100]!r} is not a class the wire carries")
        names = _init_fields(cls)
        unknown = [key for key in data if key != "$" and key not in names]
        if unknown:
            raise WireError(f"{data['$']}: unknown field(s) {', '.join(map(repr, unknown[:5]))}")
        try:
            return cls(**{key: decode(value) for key, value in data.items() if key != "$"})
        except TypeError as exc:
            raise WireError(f"{data['$']}: {exc}") from None
    if len(data) == 2 and "$e" in data and "v" in data:
        cls = allowed().get(data["$e"]) if isinstance(data["$e"], str) else None
        if cls is None or not issubclass(cls, enum.Enum):
            raise WireError(f"{str(data['$e'])[:100]!r} is not an enum the wire carries")
        try:
            return cls(decode(data["v"]))
        except ValueError as exc:
            raise WireError(str(exc)) from None
    if len(data) != 1:
        raise WireError(f"an object with keys {sorted(data)[:5]} is not an encoded value")
    ((tag, inner),) = data.items()
    try:
        if tag == "$t":
            return tuple(decode(item) for item in _list(inner))
        if tag == "$d":
            if not isinstance(inner, dict):
                raise WireError("$d takes an object")
            return {key: decode(item) for key, item in inner.items()}
        if tag == "$p":
            return {decode(pair[0]): decode(pair[1]) for pair in _list(inner) if _pair(pair)}
        if tag == "$f" and inner in _FLOATS:
            return _FLOATS[inner]
        if tag == "$fs":
            return frozenset(decode(item) for item in _list(inner))
        if tag == "$s":
            return {decode(item) for item in _list(inner)}
        if tag == "$dt" and isinstance(inner, str):
            return datetime.fromisoformat(inner)
    except (TypeError, ValueError) as exc:  # an unhashable key, a bad date
        raise WireError(str(exc)) from None
    raise WireError(f"{tag!r} is not an encoded value")


def _list(value: Any) -> list:
    if not isinstance(value, list):
        raise WireError(f"expected a list, got {type(value).__name__}")
    return value


def _pair(value: Any) -> bool:
    if not isinstance(value, list) or len(value) != 2:
        raise WireError("a mapping entry must be [key, value]")
    return True
