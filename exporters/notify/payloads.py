"""What each kind of receiver is sent for one group notification (formats: docs/alerts.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

from monitoring import format as fmt
from monitoring.alerts.engine import FIRING, RESOLVED, SOURCE_DOWN, Alert, GroupNotification

ZERO_TIME = "0001-01-01T00:00:00Z"
"""Alertmanager's endsAt of an alert that has not ended."""
VALID_FOR_SECONDS = 240.0
"""endsAt of a firing alert sent to an Alertmanager: it is sent again every minute, so 4 missed sends resolve it
(as Prometheus does)."""


def _time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _status(alert: Alert) -> str:
    return RESOLVED if alert.state == RESOLVED else FIRING


def annotations(alert: Alert) -> dict[str, str]:
    out = {"summary": alert.summary}
    if alert.description:
        out["description"] = alert.description
    if alert.state == SOURCE_DOWN:
        out["source_down"] = f"the condition cannot be evaluated: {alert.reason}"
    elif alert.state == RESOLVED:
        out["resolved"] = alert.reason
    out["value"] = fmt.number(alert.value)
    return out


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    return {k: v for k, v in maps[0].items() if all(m.get(k) == v for m in maps[1:])}


def webhook_body(note: GroupNotification, receiver: str, external_url: str = "") -> dict[str, object]:
    """Alertmanager's webhook JSON (version 4), so receivers written for Alertmanager work unchanged."""
    alerts = [{"status": _status(a), "labels": dict(a.labels), "annotations": annotations(a),
               "startsAt": _time(a.fired_at or a.active_since),
               "endsAt": _time(a.resolved_at) if a.resolved_at is not None else ZERO_TIME,
               "generatorURL": external_url, "fingerprint": a.fingerprint} for a in note.alerts]
    return {"version": "4", "groupKey": note.group_key, "truncatedAlerts": 0, "status": note.status,
            "receiver": receiver, "groupLabels": dict(note.group_labels),
            "commonLabels": _common([a["labels"] for a in alerts]),
            "commonAnnotations": _common([a["annotations"] for a in alerts]),
            "externalURL": external_url, "alerts": alerts}


def alertmanager_body(note: GroupNotification, external_url: str = "") -> list[dict[str, object]]:
    """POST /api/v2/alerts: a firing alert valid for a few minutes (sent again every minute), a resolved one
    ending when it resolved."""
    return [{"labels": dict(a.labels), "annotations": annotations(a),
             "startsAt": _time(a.fired_at or a.active_since),
             "endsAt": _time(a.resolved_at if a.resolved_at is not None else note.created_at + VALID_FOR_SECONDS),
             "generatorURL": external_url} for a in note.alerts]


def title(note: GroupNotification) -> str:
    labels = dict(note.group_labels)
    firing = sum(1 for a in note.alerts if a.state != RESOLVED)
    count = f"{note.status.upper()}:{firing}" if note.status == FIRING else note.status.upper()
    return f"[{count}] {labels['alertname']} in {labels['pipeline']}"


def _line(alert: Alert) -> str:
    state = {SOURCE_DOWN: f"source down ({alert.reason})", RESOLVED: f"resolved: {alert.reason}"}.get(
        alert.state, "firing")
    since = fmt.clock(alert.fired_at or alert.active_since)
    return f"{alert.summary} ({alert.severity}, {state}, since {since})"


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(note: GroupNotification) -> dict[str, object]:
    """Slack's incoming-webhook JSON: the title and one line per alert (source text escaped for Slack)."""
    lines = [f"*{_slack_escape(title(note))}*", *(f"• {_slack_escape(_line(a))}" for a in note.alerts)]
    return {"text": "\n".join(lines)}


def email_message(note: GroupNotification, sender: str, to: list[str]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = title(note)
    message["From"] = sender
    message["To"] = ", ".join(to)
    body = [title(note), ""]
    for alert in note.alerts:
        body.append(_line(alert))
        if alert.description:
            body.append(f"  {alert.description}")
        body.append("  " + ", ".join(f"{k}={v}" for k, v in alert.labels))
        body.append("")
    message.set_content("\n".join(body))
    return message
