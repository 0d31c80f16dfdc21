"""One instance per port: before a process listens, say plainly who holds its address.

A second agent or dashboard started on a taken port would otherwise die with a traceback (or, behind systemd,
restart in a loop). The holder is asked for `/healthz`: a pipewatch answers it (the agent's exporter, a dashboard's
Panel server), so the message can say that one is already running, and whether it is healthy.
"""

from __future__ import annotations

import errno
import json
import socket
import ssl
import urllib.error
import urllib.request

PORT_TAKEN_EXIT = 2
"""The exit status for a taken port, as for a bad config: restarting cannot fix it (systemd's
RestartPreventExitStatus=2 in deploy/systemd/)."""
_PROBE_TIMEOUT_SECONDS = 2.0


def address_taken(host: str, port: int) -> bool:
    """Whether host:port cannot be listened on because something else listens there."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return False  # an unresolvable host is the server's own error to report
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no holder
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return True
    return False


def describe_holder(host: str, port: int) -> str:
    """What holds host:port, asked over HTTP(S) at /healthz: a healthy or an unhealthy pipewatch, or something
    else."""
    target = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
    target = f"[{target}]" if ":" in target else target
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE  # only to recognise the holder; nothing is sent to it
    for scheme in ("http", "https"):
        url = f"{scheme}://{target}:{port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=_PROBE_TIMEOUT_SECONDS,
                                        context=unverified if scheme == "https" else None) as answer:
                body = _json(answer.read(4096))
            if _is_pipewatch_health(body):
                return f"a pipewatch is already running there and healthy ({url} answers {answer.status})"
        except urllib.error.HTTPError as exc:
            body = _json(exc.read(4096))
            if exc.code == 503 and _is_pipewatch_health(body):
                return (f"a pipewatch is already running there, but not healthy ({url} answers 503: "
                        f"{str(body.get('reason', ''))[:200]})")
        except (OSError, ValueError):
            continue
    return f"something that is not a pipewatch holds it (no /healthz answer at {target}:{port})"


def port_taken_message(program: str, what: str, host: str, port: int, remedy: str) -> str:
    return f"{program}: {what} {host or '0.0.0.0'}:{port} is already in use: {describe_holder(host, port)}. {remedy}"


def _is_pipewatch_health(body: object) -> bool:
    """The agent's /healthz ({"status": ..., "reason": ...}) or a dashboard's (Panel's liveness endpoint)."""
    return isinstance(body, dict) and ({"status", "reason"} <= body.keys() or body == {"/healthz": True})


def _json(data: bytes) -> object | None:
    try:
        return json.loads(data)
    except ValueError:
        return None
