"""The one GET of a JSON answer the HTTP collectors share (collectors/http.py): its categories and messages."""

from __future__ import annotations

import httpx
import pytest

from collectors.http import HTTP_CATEGORIES, HttpSourceError, get_json


def _client(handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url="http://source:8081", transport=httpx.MockTransport(handler), timeout=2.5)


async def _failure(handler, **kwargs) -> HttpSourceError:
    async with _client(handler) as client:
        with pytest.raises(HttpSourceError) as info:
            await get_json(client, "/x", **kwargs)
    assert info.value.category in HTTP_CATEGORIES
    return info.value


def _raise(exc: Exception):
    def handler(request):
        raise exc
    return handler


async def test_an_answer_is_its_json_body():
    async with _client(lambda request: httpx.Response(200, json={"a": [1]})) as client:
        assert await get_json(client, "/x", params={"q": "1"}) == {"a": [1]}


@pytest.mark.parametrize(("handler", "category", "message"), [
    (_raise(httpx.ConnectTimeout("slow")), "timeout", "GET /x: no answer within 2.5 s"),
    (_raise(httpx.ConnectError("[Errno 111] Connection refused")), "connection_refused",
     "GET /x: [Errno 111] Connection refused"),
    (_raise(httpx.ConnectError("[SSL: WRONG_VERSION_NUMBER] wrong version number")), "tls",
     "GET /x: [SSL: WRONG_VERSION_NUMBER] wrong version number"),
    (_raise(httpx.RemoteProtocolError("Server disconnected")), "connection", "GET /x: Server disconnected"),
    (lambda request: httpx.Response(401), "auth", "GET /x: HTTP 401: Unauthorized"),
    (lambda request: httpx.Response(403), "auth", "GET /x: HTTP 403: Forbidden"),
    (lambda request: httpx.Response(404, text="nothing"), "http_error", "GET /x: HTTP 404: Not Found"),
    (lambda request: httpx.Response(503), "server_error", "GET /x: HTTP 503: Service Unavailable"),
    (lambda request: httpx.Response(200, text="<html>", headers={"content-type": "text/html"}), "protocol",
     "GET /x: answer is not JSON (text/html)"),
    (lambda request: httpx.Response(200, json=[0] * 100_000), "too_large",
     "GET /x: the answer of the source at http://source:8081 is over 65,536 bytes decoded: refused, nothing of "
     "it used"),
])
async def test_each_failure_has_one_category(handler, category, message):
    failure = await _failure(handler, max_bytes=65_536)
    assert (failure.category, str(failure)) == (category, message)


async def test_a_source_names_its_own_error_code_and_message():
    def detail(body):
        return str(body["error_code"]), body["message"]

    failure = await _failure(lambda request: httpx.Response(500, json={"error_code": 50001, "message": "store"}),
                             detail=detail)
    assert (failure.category, failure.status, failure.code, str(failure)) == (
        "server_error", 500, "50001", "GET /x: HTTP 500, error 50001: store")
