"""The collector's decoder of Kafka answers gives exactly what aiokafka's own decoder gives."""

from __future__ import annotations

import itertools
from io import BytesIO
from typing import Any

import pytest
from aiokafka.protocol import commit, metadata, offset
from aiokafka.protocol.types import Array, Boolean, Bytes, Int8, Int16, Int32, Int64, Schema, String

from collectors.kafka.decode import ResponseDecoder, response_decoder

RESPONSES = [cls for module in (metadata, commit, offset) for name, cls in vars(module).items()
             if name.endswith(tuple(f"Response_v{v}" for v in range(20))) and hasattr(cls, "SCHEMA")]


def _sample(kind: Any, counter: itertools.count, nulls: bool) -> Any:
    """A value for every field: distinct numbers (negative too), non-ASCII text, nulls where allowed."""
    if kind in (Int8, Int16, Int32, Int64):
        n = next(counter) % 100
        return -n if n % 3 == 0 else n
    if kind is Boolean:
        return next(counter) % 2 == 0
    if isinstance(kind, Schema):
        return tuple(_sample(field, counter, nulls) for field in kind.fields)
    if isinstance(kind, String):
        return None if nulls and next(counter) % 4 == 0 else f"tópic-{next(counter)}"
    if kind is Bytes:
        return None if nulls else bytes(range(next(counter) % 7))
    if isinstance(kind, Array):
        if nulls and next(counter) % 5 == 0:
            return None
        return [_sample(kind.array_of, counter, nulls) for _ in range(next(counter) % 4)]
    raise AssertionError(f"no sample for {kind!r}")


@pytest.mark.parametrize("response_type", RESPONSES, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("nulls", [False, True])
def test_every_metadata_offset_fetch_and_list_offsets_version_decodes_as_aiokafka_does(response_type, nulls):
    values = _sample(response_type.SCHEMA, itertools.count(1), nulls)
    raw = response_type(*values).encode()
    decoder = response_decoder(response_type)
    assert isinstance(decoder, ResponseDecoder)
    ours, theirs = decoder.decode(BytesIO(raw)), response_type.decode(BytesIO(raw))
    assert type(ours) is response_type and ours == theirs
    if not nulls:  # aiokafka's to_object() cannot take a null array
        assert ours.to_object() == theirs.to_object()


def test_a_truncated_answer_is_a_value_error_as_in_aiokafka():
    response_type = offset.OffsetResponse_v3
    raw = response_type(0, [("t", [(p, 0, -1, 100 + p) for p in range(3)])]).encode()
    decoder = response_decoder(response_type)
    for cut in (3, 10, len(raw) - 1):
        with pytest.raises(ValueError):
            decoder.decode(BytesIO(raw[:cut]))
