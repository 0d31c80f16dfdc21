"""Reused request bytes (collectors.kafka.encode) are exactly aiokafka's encoding of the same request."""

from __future__ import annotations

import pytest
from aiokafka.protocol.commit import OffsetFetchRequest
from aiokafka.protocol.offset import OffsetRequest

from collectors.kafka.client import FastListOffsetsRequest, FastOffsetFetchRequest
from collectors.kafka.encode import EncodedRequests

LIST_OFFSETS = (("t0", ((0, -1), (1, -1), (2, -1))), ("tópic-1", ((0, -1),)))
OFFSET_FETCH = (("t0", (0, 1, 2)), ("tópic-1", (0,)))


def _versions(request_type: type) -> list[int]:
    return [cls.API_VERSION for cls in request_type._CLASSES]


def _encode(request, version: int) -> bytes:
    """What aiokafka's connection sends after the header: the prepared struct's encode()."""
    return request.prepare({request.API_KEY: (version, version)}).encode()


@pytest.mark.parametrize("version", _versions(OffsetRequest))
def test_list_offsets_bytes_equal_aiokafka_encoding_in_every_version(version):
    encodings = EncodedRequests()
    theirs = _encode(OffsetRequest(-1, 0, [(t, list(p)) for t, p in LIST_OFFSETS]), version)
    assert _encode(FastListOffsetsRequest(encodings, -1, 0, LIST_OFFSETS), version) == theirs
    assert _encode(FastListOffsetsRequest(encodings, -1, 0, LIST_OFFSETS), version) == theirs  # reused


@pytest.mark.parametrize(("version", "partitions"), [
    *((version, OFFSET_FETCH) for version in _versions(OffsetFetchRequest)),
    # A null partition list ("every partition") exists from OffsetFetch v2 on.
    *((version, None) for version in _versions(OffsetFetchRequest) if version >= 2),
])
def test_offset_fetch_bytes_equal_aiokafka_encoding_in_every_version(version, partitions):
    encodings = EncodedRequests()
    theirs = _encode(OffsetFetchRequest("g", [(t, list(p)) for t, p in partitions] if partitions else None), version)
    assert _encode(FastOffsetFetchRequest(encodings, "g", partitions), version) == theirs
    assert _encode(FastOffsetFetchRequest(encodings, "g", partitions), version) == theirs


def test_same_content_is_encoded_once_and_a_changed_partition_set_is_encoded_anew():
    encodings = EncodedRequests()
    first = _encode(FastListOffsetsRequest(encodings, -1, 0, LIST_OFFSETS), 1)
    encodings.next_cycle()
    again = _encode(FastListOffsetsRequest(encodings, -1, 0, tuple(LIST_OFFSETS)), 1)
    assert again is first  # the bytes of the last cycle, not a new encoding

    grown = LIST_OFFSETS + (("t2", ((0, -1),)),)
    changed = _encode(FastListOffsetsRequest(encodings, -1, 0, grown), 1)
    assert changed != first and changed == _encode(OffsetRequest(-1, 0, [(t, list(p)) for t, p in grown]), 1)
    # Another version of the same content is another layout: never the bytes of the first.
    assert _encode(FastListOffsetsRequest(encodings, -1, 0, LIST_OFFSETS), 0) == _encode(
        OffsetRequest(-1, 0, [(t, list(p)) for t, p in LIST_OFFSETS]), 0)


def test_bytes_not_used_for_a_whole_cycle_are_dropped():
    encodings = EncodedRequests()
    first = _encode(FastListOffsetsRequest(encodings, -1, 0, LIST_OFFSETS), 1)
    encodings.next_cycle()  # a cycle without this ListOffsets
    encodings.next_cycle()
    again = _encode(FastListOffsetsRequest(encodings, -1, 0, LIST_OFFSETS), 1)
    assert again == first and again is not first


def test_content_given_as_lists_is_refused():
    with pytest.raises(TypeError):
        _encode(FastListOffsetsRequest(EncodedRequests(), -1, 0, [(t, list(p)) for t, p in LIST_OFFSETS]), 1)
