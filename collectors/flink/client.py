"""Requests to Flink's REST API: one pooled client per cluster, and per cycle a bounded, counted set of GETs in
which a part of a job answered with an error is noted and left unknown rather than failing the cycle."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import httpx

from collectors.flink.decode import java_error, number
from collectors.http import TRANSPORT_FAILURES, HttpSourceError, build_client, get_json
from monitoring.config import FlinkSource
from monitoring.cycle import SourceFailure
from monitoring.health import describe


class FlinkError(HttpSourceError):
    """A Flink REST request that got no usable answer."""


def segment(identifier: str) -> str:
    """An id the cluster sent, as one path segment: `../x?y` must not reach another endpoint."""
    return quote(str(identifier), safe="")


def connect(config: FlinkSource) -> httpx.AsyncClient:
    return build_client(config.rest_url, config.basic_auth, config.tls, config.timeout_seconds,
                        config.max_concurrent_requests, {"Accept": "application/json"})


class FlinkRequests:
    """One cycle's requests: at most `limit` in flight, counted in `requests`; the failures of parts it went on
    without are in `failures`, for the error registry."""

    def __init__(self, client: httpx.AsyncClient, limit: asyncio.Semaphore) -> None:
        self._client = client
        self._limit = limit
        self.requests = 0
        self.failures: list[SourceFailure] = []

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """The decoded JSON answer, or FlinkError."""
        async with self._limit:
            self.requests += 1
            return await get_json(self._client, path, params=params, error=FlinkError, detail=java_error)

    async def part(self, path: str, errors: list[str], params: dict[str, str] | None = None) -> Any:
        """A request for one part of a job: when the cluster answers with an error (a vertex that is not
        running, a job that just vanished), that part is unknown (None) and the error noted in `errors`; only a
        cluster that does not answer at all fails the cycle."""
        try:
            return await self.get(path, params)
        except FlinkError as exc:
            if exc.category in TRANSPORT_FAILURES:
                raise
            errors.append(str(exc))
            self.failures.append(SourceFailure(exc.category, describe(exc), t=time.time()))
            return None

    async def metrics(self, path: str, names: list[str], errors: list[str]) -> dict[str, float | None]:
        """Named metrics of a taskmanager or job; missing, "NaN" or an empty answer (restarting) are None."""
        answer = await self.part(path, errors, {"get": ",".join(names)})
        values = {entry.get("id"): number(entry.get("value")) for entry in answer if isinstance(entry, dict)} \
            if isinstance(answer, list) else {}
        return {name: values.get(name) for name in names}
