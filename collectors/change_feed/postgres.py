"""The change feed's SQL for PostgreSQL (13 or newer): what `install` creates, what `uninstall` removes, and the
reader's queries; another dialect would be a module with the same functions. Why transaction ids make delivery
exactly-once, and how identifiers reach the triggers, is in docs/internals.md."""

from __future__ import annotations

import re

from monitoring.config import ChangeFeedEntity, ChangeFeedSource


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def changelog(config: ChangeFeedSource) -> str:
    return f"{quote(config.db_schema)}.{quote(config.changelog_table)}"


def _function(config: ChangeFeedSource) -> str:
    return f"{quote(config.db_schema)}.{quote(config.changelog_table + '_capture')}"


def _entity_table(config: ChangeFeedSource, entity: ChangeFeedEntity) -> str:
    return f"{quote(entity.db_schema or config.db_schema)}.{quote(entity.table)}"


def trigger_name(config: ChangeFeedSource, entity: ChangeFeedEntity, event: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", entity.name.lower()).strip("_")
    return f"{config.changelog_table}_{slug}_{event}"[:63]


def install(config: ChangeFeedSource) -> list[str]:
    """Statements that create the changelog, its indexes, the capture function and one trigger per entity
    and event; each is harmless to run again."""
    table, name = changelog(config), config.changelog_table
    statements = [
        f"""CREATE TABLE IF NOT EXISTS {table} (
    id bigserial PRIMARY KEY,
    entity varchar(100) NOT NULL,
    event_type varchar(10) NOT NULL,
    row_key text,
    payload json NOT NULL,  -- json, not jsonb: it keeps the table's column order
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    xid xid8 NOT NULL DEFAULT pg_current_xact_id()
)""",
        f"CREATE INDEX IF NOT EXISTS {quote(name + '_xid')} ON {table} (xid, id)",
        f"CREATE INDEX IF NOT EXISTS {quote(name + '_entity')} ON {table} (entity, id)",
        f"CREATE INDEX IF NOT EXISTS {quote(name + '_created_at')} ON {table} (created_at)",
        # SECURITY DEFINER: it writes the changelog as its owner (the installer), so writers of the watched
        # tables need no privilege on it. Hence a fixed search_path and only schema-qualified names: a writer's
        # own objects (a table, function or operator in a schema of theirs, or in pg_temp) cannot stand in.
        f"""CREATE OR REPLACE FUNCTION {_function(config)}() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pipewatch$
DECLARE
    changed pg_catalog.json := pg_catalog.to_json(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
BEGIN
    -- TG_ARGV: entity name, key column, channel (string literals written by pipewatch change-feed install)
    INSERT INTO {table} (entity, event_type, row_key, payload)
    VALUES (TG_ARGV[0], pg_catalog.lower(TG_OP), changed OPERATOR(pg_catalog.->>) TG_ARGV[1], changed);
    PERFORM pg_catalog.pg_notify(TG_ARGV[2], '');
    RETURN NULL;
END
$pipewatch$""",
        # Only triggers created by the installer may run it: anyone else could attach it to a table of their
        # own and write rows into the changelog as its owner.
        f"REVOKE ALL ON FUNCTION {_function(config)}() FROM PUBLIC",
    ]
    for entity in config.entities:
        for event in entity.events:
            trigger = quote(trigger_name(config, entity, event))
            statements += [
                f"DROP TRIGGER IF EXISTS {trigger} ON {_entity_table(config, entity)}",
                f"CREATE TRIGGER {trigger} AFTER {event.upper()} ON {_entity_table(config, entity)} FOR EACH ROW "
                f"EXECUTE FUNCTION {_function(config)}({literal(entity.name)}, {literal(entity.key)}, "
                f"{literal(config.channel)})",
            ]
    return statements


def uninstall(config: ChangeFeedSource) -> list[str]:
    """Statements that remove exactly what install created (the changelog's rows with it)."""
    statements = [f"DROP TRIGGER IF EXISTS {quote(trigger_name(config, entity, event))} "
                  f"ON {_entity_table(config, entity)}"
                  for entity in config.entities for event in ("insert", "update", "delete")]
    return statements + [f"DROP FUNCTION IF EXISTS {_function(config)}()", f"DROP TABLE IF EXISTS {changelog(config)}"]


def snapshot_floor() -> str:
    """The oldest transaction still running: every row of an older one is final."""
    return "SELECT pg_snapshot_xmin(pg_current_snapshot())::text"


def read_new(config: ChangeFeedSource) -> str:
    """Rows at or above the floor not delivered yet ($2: ids delivered above the floor), in batches."""
    return (f"SELECT id, entity, event_type, row_key, payload::text AS payload, "
            f"extract(epoch FROM created_at)::float8 AS created_at, xid::text AS xid "
            f"FROM {changelog(config)} WHERE xid >= $1::text::xid8 AND NOT (id = ANY($2::bigint[])) "
            f"ORDER BY xid, id LIMIT $3")


def recent(config: ChangeFeedSource) -> str:
    """The newest $2 rows of each entity in $1, to fill the page when pipewatch starts."""
    return (f"SELECT r.* FROM unnest($1::text[]) AS e(name), LATERAL ("
            f"SELECT id, entity, event_type, row_key, payload::text AS payload, "
            f"extract(epoch FROM created_at)::float8 AS created_at, xid::text AS xid "
            f"FROM {changelog(config)} WHERE entity = e.name ORDER BY id DESC LIMIT $2) AS r ORDER BY r.id")


def backlog(config: ChangeFeedSource) -> str:
    """Rows committed but not delivered (counted up to $3, so a huge backlog costs a bounded scan)."""
    return (f"SELECT count(*) FROM (SELECT 1 FROM {changelog(config)} WHERE xid >= $1::text::xid8 "
            f"AND NOT (id = ANY($2::bigint[])) LIMIT $3) AS pending")


def prune(config: ChangeFeedSource) -> str:
    """Delete rows older than the retention that the reader has delivered (below its floor)."""
    return (f"DELETE FROM {changelog(config)} WHERE created_at < now() - make_interval(secs => $1) "
            f"AND xid < $2::text::xid8")
