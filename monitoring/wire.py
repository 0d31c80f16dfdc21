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
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if value - value == 0 else _odd_float(value)  # (NaN and +-Inf give NaN)
    encoder = _encoders.get(kind)
    if encoder is None:
        encoder = _encoders[kind] = _encoder_for(kind)
    return encoder(value)


def _odd_float(value: float) -> dict[str, str]:
    return {"$f": "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"}


_encoders: dict[type, Any] = {}
"""type -> how to encode its values: decided once per type (a large snapshot holds ~10^5 values)."""


def _encoder_for(kind: type) -> Any:
    if issubclass(kind, enum.Enum):  # first: a str or int enum is a str or an int too
        name = _name(kind)
        return lambda value: {"$e": name, "v": encode(value.value)}
    if issubclass(kind, bool) or issubclass(kind, np.bool_):
        return bool
    if issubclass(kind, str):
        return str
    if issubclass(kind, float) or (issubclass(kind, numbers.Real) and not issubclass(kind, numbers.Integral)):
        return lambda value: encode(float(value))
    if issubclass(kind, numbers.Integral):
        return int
    if dataclasses.is_dataclass(kind):
        name, names = _name(kind), _init_fields(kind)

        def dataclass_(value: Any) -> dict[str, Any]:
            out: dict[str, Any] = {"$": name}
            for field in names:
                out[field] = encode(getattr(value, field))
            return out

        return dataclass_
    if issubclass(kind, tuple):
        return lambda value: {"$t": [encode(item) for item in value]}
    if issubclass(kind, list):
        return lambda value: [encode(item) for item in value]
    if issubclass(kind, Mapping):
        return _mapping
    if issubclass(kind, frozenset):
        return lambda value: {"$fs": [encode(item) for item in value]}
    if issubclass(kind, set):
        return lambda value: {"$s": [encode(item) for item in value]}
    if issubclass(kind, datetime):
        return lambda value: {"$dt": value.isoformat()}
    raise WireError(f"cannot encode a {kind.__module__}.{kind.__qualname__}")


def _mapping(value: Mapping) -> dict[str, Any]:
    if all(type(key) is str for key in value):
        return {"$d": {key: encode(item) for key, item in value.items()}}
    return {"$p": [[encode(key), encode(item)] for key, item in value.items()]}


_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_CLASS_KEY = frozenset({"$"})
_dataclasses: dict[str, tuple[type, frozenset[str]]] | None = None


def _dataclass_table() -> dict[str, tuple[type, frozenset[str]]]:
    """name -> (class, its init fields) of the allowed dataclasses."""
    global _dataclasses
    if _dataclasses is None:
        _dataclasses = {name: (cls, frozenset(_init_fields(cls))) for name, cls in allowed().items()
                        if dataclasses.is_dataclass(cls)}
    return _dataclasses


def decode(data: Any) -> Any:
    """What `encode` was given, rebuilt; only classes of `allowed()` are built."""
    kind = type(data)
    if kind is str or kind is float or kind is int or kind is bool or data is None:
        return data
    if kind is list:
        return [decode(item) for item in data]
    if kind is not dict:
        raise WireError(f"unexpected {kind.__name__} in the payload")
    if "$" in data:
        name = data["$"]
        found = _dataclass_table().get(name) if type(name) is str else None
        if found is None:
            raise WireError(f"{str(name)[:100]!r} is not a class the wire carries")
        cls, names = found
        if not names.issuperset(data.keys() - _CLASS_KEY):
            unknown = sorted(data.keys() - _CLASS_KEY - names)
            raise WireError(f"{name}: unknown field(s) {', '.join(map(repr, unknown[:5]))}")
        try:
            return cls(**{key: decode(value) for key, value in data.items() if key != "$"})
        except TypeError as exc:
            raise WireError(f"{name}: {exc}") from None
    if len(data) == 2 and "$e" in data and "v" in data:
        cls = allowed().get(data["$e"]) if type(data["$e"]) is str else None
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
