"""A JSON codec for pipewatch's own snapshot dataclasses, so one agent can feed other processes (mirror mode).

Details: docs/internals.md, "The wire format"."""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import hashlib
import math
import numbers
import re
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal, Union

import numpy as np


class WireError(ValueError):
    """A value that cannot be encoded, or a payload that is not one `encode` could have produced."""


def series_id(key: tuple[str, tuple[str, ...]]) -> str:
    """A short, URL-safe, stable name of a series, for per-series cursors (`cursor=ID:COUNT`)."""
    name, labels = key
    return hashlib.sha1("\x00".join((name, *labels)).encode()).hexdigest()[:16]


_TAG_MODULES = {
    "monitoring.models.kafka": "collectors.kafka_model",
    "monitoring.models.flink": "collectors.flink_model",
    "monitoring.models.schema_registry": "collectors.schema_registry_model",
    "monitoring.models.profiling": "collectors.profiling_model",
    "monitoring.models.aggregate": "collectors.prometheus_model",
}
_TAG_CLASSES = {
    "monitoring.models.kafka.Status": "collectors.kafka_status.Status",
    "monitoring.models.aggregate.History": "collectors.remote_agents.History",
    "monitoring.models.aggregate.RemoteAgentSnapshot": "collectors.remote_agents.RemoteAgentSnapshot",
}
"""Type tags are frozen at the names the classes had when the format was published (before the models moved into
monitoring/models/): agents and mirrors of either layout understand each other."""


def _tag(cls: type) -> str:
    module, name = cls.__module__, cls.__qualname__
    return _TAG_CLASSES.get(f"{module}.{name}") or f"{_TAG_MODULES.get(module, module)}.{name}"


def _model_classes() -> dict[str, type]:
    from monitoring.errors import ErrorEntry
    from monitoring.evaluation import Latency
    from monitoring.health import CollectorHealth, State
    from monitoring.models import aggregate, flink, kafka, profiling, schema_registry
    from monitoring.store import Event, FeedRow
    from monitoring.summary import PipelineSummary

    classes: list[type] = [kafka.Status, ErrorEntry, Latency, CollectorHealth, State, Event, FeedRow, PipelineSummary]
    for module in (kafka, flink, schema_registry, profiling, aggregate):
        # Every dataclass a model module defines (not what it imports): these are what snapshots are made of.
        classes += [value for value in vars(module).values() if isinstance(value, type)
                    and value.__module__ == module.__name__ and dataclasses.is_dataclass(value)]
    return {_tag(cls): cls for cls in classes}


_allowed: dict[str, type] | None = None
_tags: dict[type, str] = {}
_fields: dict[type, tuple[str, ...]] = {}


def allowed() -> dict[str, type]:
    """tag -> class of everything `decode` may build (built on first use: the model modules import a lot)."""
    global _allowed
    if _allowed is None:
        _allowed = _model_classes()
        _tags.update((cls, tag) for tag, cls in _allowed.items())
    return _allowed


def _name(cls: type) -> str:
    allowed()
    tag = _tags.get(cls)
    if tag is None:
        raise WireError(f"{cls.__module__}.{cls.__qualname__} is not a class the wire carries")
    return tag


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


ADDED_LATER = "wire_added_later"
"""Field metadata (`field(default=..., metadata={ADDED_LATER: True})`) of a field added to a class after the
format was published: left out while at its default, so agents and mirrors of earlier versions understand each
other (a reader builds the class with the default when the field is absent)."""


def _is_default(value: Any, default: Any) -> bool:
    if isinstance(value, float) and isinstance(default, float) and math.isnan(value) and math.isnan(default):
        return True
    return value is default or (type(value) is type(default) and value == default)


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
        later = {f.name: f.default for f in dataclasses.fields(kind) if f.metadata.get(ADDED_LATER)}

        def dataclass_(value: Any) -> dict[str, Any]:
            out: dict[str, Any] = {"$": name}
            for field in names:
                item = getattr(value, field)
                if field in later and _is_default(item, later[field]):
                    continue  # a field added to a published class: absent, earlier readers still decode the rest
                out[field] = encode(item)
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
_NONE = type(None)
# Values compared against resolved type hints, not annotations: a bare `typing.Dict` hint is not `dict`.
_MAPPINGS = (dict, Mapping, collections.abc.MutableMapping, typing.Mapping, typing.Dict)  # noqa: UP006
_SEQUENCES = {tuple: tuple, list: list, set: set, frozenset: frozenset}

Check = Callable[[Any], bool]


@dataclasses.dataclass(frozen=True, slots=True)
class _Class:
    """What decoding needs of one allowed dataclass: built once (a large state holds ~10^5 objects)."""

    cls: type
    names: frozenset[str]
    checks: dict[str, Check | None]
    """field -> a test of its value, or None when anything goes."""
    hints: dict[str, Any]
    """field -> its annotation (for the message)."""


_dataclasses: dict[str, _Class] | None = None
_enum_types: dict[type, frozenset[type]] = {}


def _dataclass_table() -> dict[str, _Class]:
    """name -> (class, its init fields, a test of each field's value) of the allowed dataclasses."""
    global _dataclasses
    if _dataclasses is None:
        table = {}
        for name, cls in allowed().items():
            if dataclasses.is_dataclass(cls):
                hints = typing.get_type_hints(cls)
                names = _init_fields(cls)
                table[name] = _Class(cls, frozenset(names), {f: _checker(hints[f]) for f in names},
                                     {f: hints[f] for f in names})
        _dataclasses = table
    return _dataclasses


def _exact_types(hint: Any) -> frozenset[type] | None:
    """The exact types a value of `hint` may have when its type alone decides (plain types, enums, model classes
    and unions of those); None when more must be looked at. A float field takes an int (1.0 may have been
    written as 1), but bool is no number here: True where a count or a lag goes is a wrong value, not 1."""
    if hint is Any or hint is object:  # (Any is a class since Python 3.11)
        return None
    if hint is float:
        return frozenset({float, int})
    if hint is None or hint is _NONE:
        return frozenset({_NONE})
    if isinstance(hint, type) and hint not in _SEQUENCES and hint is not dict and not issubclass(hint, Mapping):
        return frozenset({hint})
    if typing.get_origin(hint) in (Union, types.UnionType):
        parts = [_exact_types(arg) for arg in typing.get_args(hint)]
        if all(part is not None for part in parts):
            return frozenset().union(*parts)  # type: ignore[arg-type]
    return None


def _checker(hint: Any) -> Check | None:
    """A test that a decoded value fits `hint`; None when any value does (Any, object)."""
    if hint is Any or hint is object:
        return None
    exact = _exact_types(hint)
    if exact is not None:
        if len(exact) == 1:
            (only,) = exact
            return lambda value: type(value) is only
        return lambda value: type(value) in exact
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        allowed_values = frozenset((type(arg), arg) for arg in args)  # (True is not 1 here)
        return lambda value: (type(value), value) in allowed_values
    if origin in (Union, types.UnionType):
        checks = [_checker(arg) for arg in args]
        if any(check is None for check in checks):
            return None
        return lambda value: any(check(value) for check in checks)  # type: ignore[misc]
    if hint in _SEQUENCES or hint is dict or hint in _MAPPINGS:
        kind = dict if hint in _MAPPINGS or hint is dict else hint
        return lambda value: type(value) is kind
    if origin in _SEQUENCES:
        kind = _SEQUENCES[origin]
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if args == ((),):
                return lambda value: value == ()
            checks = [_checker(arg) for arg in args]
            n = len(checks)
            return lambda value: (type(value) is tuple and len(value) == n
                                  and all(check is None or check(item)
                                          for check, item in zip(checks, value, strict=True)))
        return _collection(kind, args[0] if args else Any)
    if origin in _MAPPINGS:
        key, item = args if args else (Any, Any)
        keys, items = _exact_types(key), _exact_types(item)
        if keys is not None and items is not None:  # the common case, with no Python loop
            return lambda value: (type(value) is dict and set(map(type, value)) <= keys
                                  and set(map(type, value.values())) <= items)
        key_check, item_check = _checker(key), _checker(item)
        return lambda value: (type(value) is dict
                              and (key_check is None or all(map(key_check, value)))
                              and (item_check is None or all(map(item_check, value.values()))))
    raise TypeError(f"the wire cannot check a field annotated {hint!r}")


def _collection(kind: type, item: Any) -> Check:
    exact = _exact_types(item)
    if exact is not None:  # (the types of a 600-point tuple in one C loop)
        return lambda value: type(value) is kind and set(map(type, value)) <= exact
    check = _checker(item)
    if check is None:
        return lambda value: type(value) is kind
    return lambda value: type(value) is kind and all(map(check, value))


def _describe(hint: Any) -> str:
    if hint is _NONE:
        return "None"
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__qualname__
    text = re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", repr(hint))  # (monitoring.models.kafka.Broker: Broker)
    return text.replace("NoneType", "None").replace("Ellipsis", "...")


def _wrong(cls: type, field: str, hint: Any, value: Any) -> WireError:
    """What is wrong with a field's value, as precisely as cheaply: only on the failing path."""
    where = f"{cls.__qualname__}.{field}: expected {_describe(hint)}"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in _SEQUENCES and type(value) is _SEQUENCES[origin] and args:
        for index, item in enumerate(value):
            part = args[0] if len(args) == 2 and args[1] is Ellipsis else args[min(index, len(args) - 1)]
            check = _checker(part)
            if check is not None and not check(item):
                return WireError(f"{where}, got an item {index} of type {_kind(item)}")
        return WireError(f"{where}, got {len(value)} item(s)")
    if origin in _MAPPINGS and type(value) is dict and args:
        for part, items, role in ((args[0], value.keys(), "key"), (args[1], value.values(), "value")):
            check = _checker(part)
            for item in items:
                if check is not None and not check(item):
                    return WireError(f"{where}, got a {role} of type {_kind(item)}")
    if origin is Literal and type(value) in {type(arg) for arg in args}:
        return WireError(f"{where}, got {_short(value)}")
    return WireError(f"{where}, got {_kind(value)}")


def _inside(cls: type, data: dict, error: WireError) -> WireError:
    """`error` with the field it came from in front (only on the failing path: the fields are decoded again),
    so a nested mistake is said from the outside in, e.g. "GroupInfo.partitions: PartitionLag.lag: ..."."""
    for key, value in data.items():
        if key != "$":
            try:
                decode(value)
            except WireError:
                return WireError(f"{cls.__qualname__}.{key}: {error}")
    return error


def _kind(value: Any) -> str:
    return "None" if value is None else type(value).__qualname__


def _short(value: Any) -> str:
    """A value from the wire in a message: its repr cut short (the other side chooses its length)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _enum(cls: type[enum.Enum], value: Any) -> enum.Enum:
    kinds = _enum_types.get(cls)
    if kinds is None:
        kinds = _enum_types[cls] = frozenset(type(member.value) for member in cls)
    member = cls._value2member_map_.get(value) if type(value) in kinds else None  # (an IntEnum takes True for 1)
    if member is None:
        raise WireError(f"unknown {cls.__qualname__} value {_short(value)}")
    return member


def decode(data: Any) -> Any:
    """What `encode` was given, rebuilt; only classes of `allowed()` are built, with values their fields allow."""
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
            raise WireError(f"{_short(str(name)[:100])} is not a class the wire carries")
        cls, checks = found.cls, found.checks
        if not found.names.issuperset(data.keys() - _CLASS_KEY):
            unknown = sorted(data.keys() - _CLASS_KEY - found.names)
            raise WireError(f"{name}: unknown field(s) {', '.join(_short(key) for key in unknown[:5])}")
        try:
            values = {key: decode(value) for key, value in data.items() if key != "$"}
        except WireError as exc:
            raise _inside(cls, data, exc) from None
        for key, value in values.items():
            check = checks[key]
            if check is not None and not check(value):
                raise _wrong(cls, key, found.hints[key], value)
        try:
            return cls(**values)
        except TypeError as exc:
            raise WireError(f"{name}: {exc}") from None
    if len(data) == 2 and "$e" in data and "v" in data:
        cls = allowed().get(data["$e"]) if type(data["$e"]) is str else None
        if cls is None or not issubclass(cls, enum.Enum):
            raise WireError(f"{_short(str(data['$e'])[:100])} is not an enum the wire carries")
        return _enum(cls, decode(data["v"]))
    if len(data) != 1:
        raise WireError(f"an object with keys {[_short(key) for key in sorted(data)[:5]]} is not an encoded value")
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
        if isinstance(exc, WireError):
            raise
        raise WireError(str(exc)[:200]) from None
    raise WireError(f"{_short(tag)} is not an encoded value")


def _list(value: Any) -> list:
    if not isinstance(value, list):
        raise WireError(f"expected a list, got {type(value).__name__}")
    return value


def _pair(value: Any) -> bool:
    if not isinstance(value, list) or len(value) != 2:
        raise WireError("a mapping entry must be [key, value]")
    return True
