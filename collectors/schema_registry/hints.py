"""The schema registry's own error hints: its error codes (the Confluent API reference), carried as
"HTTP 404, error 40401: ...", and a 404 on its root paths (a wrong url or path_prefix). Registered for the
schema_registry components when the package is imported."""

from __future__ import annotations

import re

from monitoring.errors import HintContext, auth_hint, register_hints, request_path


def _subject(text: str) -> str | None:
    match = re.search(r"/subjects/([^/\s:?]+)", text) or re.search(r"[Ss]ubject '([^']+)'", text)
    return match.group(1) if match else None



# Confluent schema registry error codes (its API reference), carried as "HTTP 404, error 40401: ...".
def _registry_code(ctx: HintContext) -> str:
    match = re.search(r"HTTP (\d{3}), error (\d{3,5})\b", ctx.message)
    if not match:
        return ""
    code = int(match.group(2))
    subject = _subject(ctx.message)
    the_subject = f"subject {subject}" if subject else "the subject"
    if code == 40401:
        return (f"Error 40401: {the_subject} does not exist on the registry{ctx.where}: it was deleted, or the name is "
                "misspelt (the subject naming strategy decides it, e.g. <topic>-value).")
    if code == 40402:
        return f"Error 40402: the version asked for does not exist under {the_subject} (deleted, or never registered)."
    if code == 40403:
        return ("Error 40403: no schema has the id asked for: the registry lost it (a recreated _schemas topic) or "
                "the id comes from another registry.")
    if code == 40404:
        return f"Error 40404: {the_subject} was soft-deleted: ask with ?deleted=true or register it again."
    if code == 409 or code == 40901:
        return (f"Error {code}: the schema is incompatible with the earlier versions of {the_subject} under its "
                "compatibility level: make the change compatible (add fields with defaults) or change the level.")
    if code == 42201:
        return "Error 42201: the registry could not parse the schema: check the schema text and its schemaType."
    if code == 42202:
        return "Error 42202: the version is not a valid version number (an integer >= 1 or 'latest')."
    if code in (42203, 42204):
        what = "compatibility level" if code == 42203 else "mode"
        return f"Error {code}: the registry does not know the {what} given."
    if code == 42205:
        return (f"Error 42205: the operation is not permitted in the registry's or {the_subject}'s mode "
                "(READONLY or IMPORT): switch the mode to READWRITE to register.")
    if code == 50001:
        return (f"Error 50001: the registry{ctx.where} could not read or write its backing store (the _schemas topic "
                "on Kafka, or its database): check the registry's log and the store it writes to.")
    if code == 50002:
        return (f"Error 50002: the registry{ctx.where} timed out waiting for its backing store (the _schemas topic) "
                "to acknowledge: check that store's brokers.")
    if code == 50003:
        return (f"Error 50003: the registry node{ctx.where} could not forward the request to its primary (leader): "
                "check that the primary runs and that registry nodes reach each other.")
    if code == 40101 or match.group(1) == "401":
        return auth_hint(ctx)
    return ""


def _status(text: str) -> str | None:
    match = re.search(r"HTTP (\d{3})", text)
    return match.group(1) if match else None


def _not_found(ctx: HintContext) -> str:
    path = request_path(ctx.message)
    if _status(ctx.message) == "404" and path in ("/", "/subjects", "/config", "/mode"):
        return (f"HTTP 404 for {path}: {ctx.target or 'the URL'} does not serve the Confluent registry API "
                "there: check url and path_prefix (Apicurio needs /apis/ccompat/v7).")
    return ""


register_hints("schema_registry", _registry_code)
register_hints("schema_registry", _not_found)
