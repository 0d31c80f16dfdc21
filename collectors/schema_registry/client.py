"""Requests to a Confluent-compatible registry: one pooled client, at most `max_concurrent_requests` in flight, and
every request and failed request counted, as schema_registry_requests_total and _errors_total report them."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx

from collectors.http import HttpSourceError, build_client, checked, fetch_json
from monitoring.config import SchemaRegistrySource
from monitoring.cycle import SourceFailure
from monitoring.health import describe

_ACCEPT = "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json; q=0.9, application/json; q=0.5"


class RegistryError(HttpSourceError):
    """A request that got no usable answer, with what the error counter labels it by."""

    @property
    def http_status(self) -> str:
        """The HTTP status, or the category when no answer came (timeout, connection_refused, tls, connection)."""
        return self.category if self.status is None else str(self.status)

    @property
    def error_code(self) -> str:
        return self.code


def registry_error(body: Any) -> tuple[str, str | None]:
    """The registry's error_code and message from an error answer's body ({"error_code": 40401, "message": ...})."""
    if not isinstance(body, dict):
        return "", None
    message = body.get("message")
    return str(body.get("error_code", "")), str(message)[:200] if message else None


class RegistryRequests:
    """The registry's requests: counted since start (`requests_total`, `errors` by status and error code) and per
    cycle (`requests`, and the failed requests `failures` hands to the error registry)."""

    def __init__(self, config: SchemaRegistrySource) -> None:
        self._config = config
        self._client: httpx.AsyncClient | None = None
        self._limit = asyncio.Semaphore(config.max_concurrent_requests)
        self.requests = 0
        """Requests sent in this cycle."""
        self.requests_total = 0
        self.errors: Counter[tuple[str, str]] = Counter()
        """(http_status, error_code) -> failed requests since start."""
        self._cycle_failures: list[tuple[RegistryError, float]] = []

    def next_cycle(self) -> None:
        self.requests = 0
        self._cycle_failures = []

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def _connect(self) -> httpx.AsyncClient:
        if self._client is None:
            config = self._config
            self._client = build_client(config.base_url, config.basic_auth, config.tls, config.timeout_seconds,
                                        config.max_concurrent_requests, {"Accept": _ACCEPT})
        return self._client

    async def get(self, path: str, params: dict[str, str] | None = None, optional: bool = False,
                  unhealthy_ok: bool = False) -> tuple[Any, float]:
        """The decoded JSON body of a 2xx answer and the seconds it took, or RegistryError.

        optional: a 404 (no such subject, setting or endpoint) answers None and is no error.
        unhealthy_ok: a 503 with a JSON body is an answer too (Karapace's /_health when not ready).
        """
        client = self._connect()
        async with self._limit:
            self.requests += 1
            self.requests_total += 1
            started = time.monotonic()
            try:
                answer = await fetch_json(client, path, params=params, error=RegistryError, what="the registry")
            except RegistryError as exc:
                raise self._failed(exc) from None
            elapsed = time.monotonic() - started
        if optional and answer.status == 404:
            return None, elapsed
        if unhealthy_ok and answer.status == 503 and answer.body is not None:
            return answer.body, elapsed
        try:
            return checked(answer, path, error=RegistryError, detail=registry_error), elapsed
        except RegistryError as exc:
            raise self._failed(exc) from None

    async def get_optional(self, path: str, params: dict[str, str] | None = None, unhealthy_ok: bool = False) -> Any:
        """The body of a 2xx answer, None for a 404, or RegistryError."""
        return (await self.get(path, params, optional=True, unhealthy_ok=unhealthy_ok))[0]

    def _failed(self, error: RegistryError) -> RegistryError:
        self.errors[(error.http_status, error.error_code)] += 1
        self._cycle_failures.append((error, time.time()))
        return error

    def failures(self, ending: BaseException | None = None) -> tuple[SourceFailure, ...]:
        """This cycle's failed requests for the error registry, but the one that ended the cycle (the runtime
        records that one), once: they are handed over only once."""
        failures = tuple(SourceFailure(error.category, describe(error), t=t)
                         for error, t in self._cycle_failures if error is not ending)
        self._cycle_failures = []
        return failures
