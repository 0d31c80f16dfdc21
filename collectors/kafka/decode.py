"""Kafka answers decoded by offset into the answer's bytes (struct), for the collector's large answers, where
aiokafka's value-by-value decoder is the cost; the result is the object aiokafka builds. How the decoders are made
is in docs/kafka-collector.md."""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from io import BytesIO
from typing import Any

from aiokafka.protocol.types import Array, Boolean, Bytes, Float64, Int8, Int16, Int32, Int64, Schema, String, UInt32

Decoder = Callable[[bytes, int], tuple[Any, int]]
"""(answer bytes, position) -> (value, position after it)."""

_FIXED = {Int8: "b", Int16: "h", Int32: "i", Int64: "q", UInt32: "I", Float64: "d", Boolean: "?"}
_INT16, _INT32 = struct.Struct(">h"), struct.Struct(">i")


class FastDecoded:
    """Mixin for an aiokafka Request whose answer is decoded here instead of by aiokafka."""

    def prepare(self, versions: dict[int, tuple[int, int]]) -> Any:
        request_struct = super().prepare(versions)  # type: ignore[misc]
        # aiokafka decodes an answer with its request struct's RESPONSE_TYPE.
        request_struct.RESPONSE_TYPE = response_decoder(request_struct.RESPONSE_TYPE)
        return request_struct


class ResponseDecoder:
    """Stands in for a response class: decode() returns an instance of it."""

    def __init__(self, response_type: Any) -> None:
        self.response_type = response_type
        self._fields = _schema(response_type.SCHEMA)

    def decode(self, data: BytesIO) -> Any:
        return self.from_bytes(data.read())

    def from_bytes(self, raw: bytes) -> Any:
        try:
            values, _ = self._fields(raw, 0)
        except struct.error as exc:  # as aiokafka reports a truncated answer
            raise ValueError(f"Buffer underrun decoding {self.response_type.__name__}") from exc
        return self.response_type(*values)


@functools.cache
def response_decoder(response_type: Any) -> ResponseDecoder | Any:
    """The decoder of a response class; the class itself (aiokafka decodes it) when its schema
    uses a type not handled here (the compact types of flexible versions)."""
    try:
        return ResponseDecoder(response_type)
    except TypeError:
        return response_type


class LastAnswer:
    """A response type's decode that returns the previous answer's decoded object when the bytes
    are identical: the caller tells an unchanged answer by identity. One per request kind."""

    def __init__(self) -> None:
        self.response_type: Any = None
        self._decoded_as: Any = None
        self._raw = b""
        self._decoded: Any = None

    def decode(self, data: BytesIO) -> Any:
        raw = data.read()
        if raw != self._raw or self.response_type is not self._decoded_as:
            decoder = response_decoder(self.response_type)
            self._decoded = (decoder.from_bytes(raw) if isinstance(decoder, ResponseDecoder)
                             else decoder.decode(BytesIO(raw)))
            self._raw, self._decoded_as = raw, self.response_type
        return self._decoded


def _decoder(kind: Any) -> Decoder:
    if kind in _FIXED:
        fixed = struct.Struct(">" + _FIXED[kind])
        return lambda raw, pos: (fixed.unpack_from(raw, pos)[0], pos + fixed.size)
    if isinstance(kind, Schema):
        return _schema(kind)
    if type(kind) is String:
        return _string(kind.encoding)
    if kind is Bytes:
        return _bytes
    if type(kind) is Array:
        return _array(kind.array_of)
    raise TypeError(f"no decoder for {kind!r}")


def _fixed_format(kind: Any) -> str | None:
    """struct format of a type or schema of fixed width; None when its width varies."""
    if kind in _FIXED:
        return _FIXED[kind]
    if isinstance(kind, Schema):
        formats = [_fixed_format(field) for field in kind.fields]
        return "".join(formats) if all(f is not None for f in formats) else None  # type: ignore[arg-type]
    return None


def _schema(schema: Schema) -> Decoder:
    fmt = _fixed_format(schema)
    if fmt is not None:
        whole = struct.Struct(">" + fmt)
        return lambda raw, pos: (whole.unpack_from(raw, pos), pos + whole.size)
    one_string = _one_string(schema)
    if one_string is not None:
        return one_string
    # Runs of fixed-width fields are read in one call; the others one by one.
    parts: list[tuple[bool, Any]] = []
    for field in schema.fields:
        field_fmt = _fixed_format(field) if field in _FIXED else None
        if field_fmt is not None and parts and parts[-1][0]:
            parts[-1] = (True, parts[-1][1] + field_fmt)
        elif field_fmt is not None:
            parts.append((True, field_fmt))
        else:
            parts.append((False, _decoder(field)))
    steps = [(True, struct.Struct(">" + part)) if fixed else (False, part) for fixed, part in parts]

    def decode(raw: bytes, pos: int) -> tuple[tuple[Any, ...], int]:
        values: list[Any] = []
        for fixed, step in steps:
            if fixed:
                values += step.unpack_from(raw, pos)
                pos += step.size
            else:
                value, pos = step(raw, pos)
                values.append(value)
        return tuple(values), pos

    return decode


def _one_string(schema: Schema) -> Decoder | None:
    """The decoder of entries made of fixed-width fields around one string, unrolled (faster than
    the general one); None for entries of another shape. OffsetFetch's partition entries have this
    shape in every version, one per partition asked."""
    strings = [i for i, field in enumerate(schema.fields) if type(field) is String]
    if len(strings) != 1 or not all(field in _FIXED for field in schema.fields if type(field) is not String):
        return None
    i = strings[0]
    head = struct.Struct(">" + "".join(_FIXED[field] for field in schema.fields[:i]))
    tail = struct.Struct(">" + "".join(_FIXED[field] for field in schema.fields[i + 1:]))
    encoding = schema.fields[i].encoding

    def decode(raw: bytes, pos: int) -> tuple[tuple[Any, ...], int]:
        before = head.unpack_from(raw, pos)
        pos += head.size
        (length,), pos = _INT16.unpack_from(raw, pos), pos + 2
        text = None
        if length >= 0:
            end = pos + length
            if end > len(raw):
                raise ValueError("Buffer underrun decoding string")
            text, pos = raw[pos:end].decode(encoding), end
        return (*before, text, *tail.unpack_from(raw, pos)), pos + tail.size

    return decode


def _array(item: Any) -> Decoder:
    fmt = _fixed_format(item)
    if fmt is not None:
        entry = struct.Struct(">" + fmt)
        single = item in _FIXED  # an array of plain values, not of entries

        def fixed(raw: bytes, pos: int) -> tuple[list[Any] | None, int]:
            (count,), pos = _INT32.unpack_from(raw, pos), pos + 4
            if count < 0:
                return None, pos
            end = pos + count * entry.size
            if end > len(raw):
                raise ValueError("Buffer underrun decoding Array")
            if single:
                return list(struct.unpack_from(f">{count}{fmt}", raw, pos)), end
            return list(entry.iter_unpack(memoryview(raw)[pos:end])), end

        return fixed
    element = _decoder(item)

    def varying(raw: bytes, pos: int) -> tuple[list[Any] | None, int]:
        (count,), pos = _INT32.unpack_from(raw, pos), pos + 4
        if count < 0:
            return None, pos
        values = []
        for _ in range(count):
            value, pos = element(raw, pos)
            values.append(value)
        return values, pos

    return varying


def _string(encoding: str) -> Decoder:
    def decode(raw: bytes, pos: int) -> tuple[str | None, int]:
        (length,), pos = _INT16.unpack_from(raw, pos), pos + 2
        if length < 0:
            return None, pos
        end = pos + length
        if end > len(raw):
            raise ValueError("Buffer underrun decoding string")
        return raw[pos:end].decode(encoding), end

    return decode


def _bytes(raw: bytes, pos: int) -> tuple[bytes | None, int]:
    (length,), pos = _INT32.unpack_from(raw, pos), pos + 4
    if length < 0:
        return None, pos
    end = pos + length
    if end > len(raw):
        raise ValueError("Buffer underrun decoding Bytes")
    return raw[pos:end], end
