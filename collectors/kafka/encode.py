"""Kafka requests whose encoded bytes are reused while their content stays the same: most cycles send the same
ListOffsets and OffsetFetch, and aiokafka encodes value by value (docs/kafka-collector.md)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any


class EncodedRequests:
    """Encoded request bytes by key, kept while requests with that key are sent every cycle.

    An entry not used for a whole cycle (between two `next_cycle` calls) is dropped, so memory
    stays at most two cycles' worth of requests, whatever the partition sets were before.
    """

    def __init__(self) -> None:
        self._current: dict[Hashable, bytes] = {}
        self._previous: dict[Hashable, bytes] = {}

    def next_cycle(self) -> None:
        self._previous, self._current = self._current, {}

    def encoded(self, key: Hashable, encode: Callable[[], bytes]) -> bytes:
        raw = self._current.get(key)
        if raw is None:
            raw = self._previous.pop(key, None)
            if raw is None:
                raw = encode()
            self._current[key] = raw
        return raw


class CachedEncoding:
    """Mixin for an aiokafka Request whose constructor arguments are its whole content: the
    request struct it prepares encodes through `encodings`, keyed by its class and those
    arguments. They must be hashable (tuples, not lists): a list raises TypeError when sent."""

    def __init__(self, encodings: EncodedRequests, *args: Any) -> None:
        super().__init__(*args)  # type: ignore[call-arg]
        self._encodings = encodings
        self._content = args

    def prepare(self, versions: dict[int, tuple[int, int]]) -> Any:
        request_struct = super().prepare(versions)  # type: ignore[misc]
        key = (type(request_struct), self._content)
        encode = request_struct.encode
        # aiokafka's connection sends request_struct.encode(): the struct's own method, shadowed.
        request_struct.encode = lambda: self._encodings.encoded(key, encode)
        return request_struct
