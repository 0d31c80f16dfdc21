"""The change feed's SQL for MySQL (8.0 or newer) and MariaDB (10.6 or newer): what `install` creates, what
`uninstall` removes, and the reader's queries. The same functions as the PostgreSQL module, in the MySQL dialect.

MySQL has no transaction-id floor to read below, so the reader tracks ids instead: AUTO_INCREMENT ids are
taken at insert time and become visible at commit, and an id missing below a delivered one is either held by a
transaction still running or gone for good (rolled back). A locking read tells the two apart without waiting
(`FOR UPDATE NOWAIT` fails on a row whose inserting transaction is still open); the design is in
docs/change-feed-mysql.md.

Identifiers come from validated configuration and are always quoted with backticks (a backtick doubled); the
entity name and event reach the trigger as string literals, never as code.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote, urlsplit

from monitoring.config import ChangeFeedEntity, ChangeFeedSource

LOCK_ERRORS = (1205, 3572)
"""A locking read refused at once: MariaDB's lock wait timeout (what NOWAIT raises there), MySQL's ER_LOCK_NOWAIT."""


def quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


def literal(text: str) -> str:
    # Backslashes too: MySQL reads them as escapes unless NO_BACKSLASH_ESCAPES is set.
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def connect_arguments(config: ChangeFeedSource) -> dict:
    """Keyword arguments for asyncmy.connect: mysql://user@host:port/database[?unix_socket=PATH]; the password
    from `password` / `password_file` (never the URL, which config validation refuses to carry one)."""
    parts = urlsplit(config.dsn.get_secret_value())
    query = parse_qs(parts.query)
    arguments = {"user": unquote(parts.username or "root"), "db": unquote(parts.path.strip("/")),
                 "autocommit": True, "charset": "utf8mb4"}
    if "unix_socket" in query:
        arguments["unix_socket"] = query["unix_socket"][0]
    else:
        arguments["host"] = parts.hostname or "127.0.0.1"
        arguments["port"] = parts.port or 3306
    password = config.connect_arguments().get("password")
    if password is not None:
        arguments["password"] = password
    return arguments


def changelog(config: ChangeFeedSource) -> str:
    return f"{quote(config.db_schema)}.{quote(config.changelog_table)}"


def _entity_table(config: ChangeFeedSource, entity: ChangeFeedEntity) -> str:
    return f"{quote(entity.db_schema or config.db_schema)}.{quote(entity.table)}"


def trigger_name(config: ChangeFeedSource, entity: ChangeFeedEntity, event: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", entity.name.lower()).strip("_")
    return f"{config.changelog_table}_{slug}_{event}"[:64]


def _trigger(config: ChangeFeedSource, entity: ChangeFeedEntity, event: str) -> str:
    """The trigger's name, qualified by its table's schema (a MySQL trigger lives in its table's schema)."""
    return f"{quote(entity.db_schema or config.db_schema)}.{quote(trigger_name(config, entity, event))}"


def columns_query() -> str:
    """The columns of a table (%s: schema, table), in table order: the payload of an entity without `fields`."""
    return ("SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
            "ORDER BY ordinal_position")


def payload_columns(entity: ChangeFeedEntity, table_columns: list[str] | None) -> list[str]:
    """What the payload holds: the key and the entity's `fields`, or every column of the table without them."""
    if entity.fields:
        return [entity.key, *(f for f in entity.fields if f != entity.key)]
    if not table_columns:
        raise ValueError(f"entity {entity.name!r}: no `fields` given and the columns of its table could not be "
                         f"read (does {entity.table!r} exist?)")
    return table_columns


def install(config: ChangeFeedSource, columns: dict[str, list[str]]) -> list[str]:
    """Statements that create the changelog and one trigger per entity and event; each is harmless to run again.
    `columns`: the payload's columns per entity name (payload_columns). MySQL commits each DDL statement on
    its own: a failed install is finished by running it again."""
    table = changelog(config)
    statements = [
        f"""CREATE TABLE IF NOT EXISTS {table} (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    entity VARCHAR(100) NOT NULL,
    event_type VARCHAR(10) NOT NULL,
    row_key TEXT,
    payload LONGTEXT CHARACTER SET utf8mb4 NOT NULL,  -- text, not JSON: it keeps the columns' order
    created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    KEY {quote(config.changelog_table + '_entity')} (entity, id),
    KEY {quote(config.changelog_table + '_created_at')} (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    ]
    for entity in config.entities:
        for event in entity.events:
            row = "OLD" if event == "delete" else "NEW"
            fields = ", ".join(f"{literal(column)}, {row}.{quote(column)}" for column in columns[entity.name])
            # Triggers run with their definer's rights (the installer): writers need nothing on the changelog.
            # SYSDATE(6): the time of the insert itself, not of the statement's start (NOW).
            statements += [
                f"DROP TRIGGER IF EXISTS {_trigger(config, entity, event)}",
                f"CREATE TRIGGER {_trigger(config, entity, event)} AFTER {event.upper()} ON "
                f"{_entity_table(config, entity)} FOR EACH ROW\n"
                f"INSERT INTO {table} (entity, event_type, row_key, payload, created_at) VALUES ("
                f"{literal(entity.name)}, {literal(event)}, CAST({row}.{quote(entity.key)} AS CHAR), "
                f"JSON_OBJECT({fields}), SYSDATE(6))",
            ]
    return statements


def uninstall(config: ChangeFeedSource) -> list[str]:
    """Statements that remove exactly what install created (the changelog's rows with it)."""
    statements = [f"DROP TRIGGER IF EXISTS {_trigger(config, entity, event)}"
                  for entity in config.entities for event in ("insert", "update", "delete")]
    return statements + [f"DROP TABLE IF EXISTS {changelog(config)}"]


_COLUMNS = "id, entity, event_type, row_key, payload, UNIX_TIMESTAMP(created_at) AS created_at"


def read_new(config: ChangeFeedSource) -> str:
    """Committed rows above the high mark (%s), in id order, in batches (%s)."""
    return f"SELECT {_COLUMNS} FROM {changelog(config)} WHERE id > %s ORDER BY id LIMIT %s"


def _ranges(count: int) -> str:
    return " OR ".join(["id BETWEEN %s AND %s"] * count)


def read_gaps(config: ChangeFeedSource, ranges: int) -> str:
    """Rows committed since inside `ranges` missing-id ranges (%s, %s each), at most %s: rows whose transaction
    is still open are skipped, not waited for."""
    return (f"SELECT {_COLUMNS} FROM {changelog(config)} WHERE {_ranges(ranges)} ORDER BY id LIMIT %s "
            f"FOR UPDATE SKIP LOCKED")


def settle_gap(config: ChangeFeedSource) -> str:
    """One missing-id range (%s, %s): fails at once (LOCK_ERRORS) while a transaction holding one of its ids is
    open; otherwise returns the rows committed in it meanwhile (at most %s), and the rest are gone for good."""
    return (f"SELECT {_COLUMNS} FROM {changelog(config)} WHERE id BETWEEN %s AND %s ORDER BY id LIMIT %s "
            f"FOR UPDATE NOWAIT")


def recent(config: ChangeFeedSource, entities: int) -> str:
    """The newest %s rows of each of `entities` entities (%s each), to fill the page when pipewatch starts."""
    per_entity = " UNION ALL ".join(
        [f"(SELECT {_COLUMNS} FROM {changelog(config)} WHERE entity = %s ORDER BY id DESC LIMIT %s)"] * entities)
    return f"SELECT * FROM ({per_entity}) AS r ORDER BY id"


def newest_ids(config: ChangeFeedSource) -> str:
    """The newest committed ids (%s of them): where the reader starts, and the holes below the newest."""
    return f"SELECT id FROM {changelog(config)} ORDER BY id DESC LIMIT %s"


def backlog(config: ChangeFeedSource) -> str:
    """Rows committed above the high mark (%s) not read yet (counted up to %s: a bounded scan)."""
    return f"SELECT count(*) FROM (SELECT 1 FROM {changelog(config)} WHERE id > %s LIMIT %s) AS pending"


PRUNE_BATCH = 10_000


def prunable(config: ChangeFeedSource) -> str:
    """Ids below the reader's floor (%s: all delivered) older than the retention (%s seconds), oldest first.
    The newest row always stays (it is at the floor or above), so the AUTO_INCREMENT counter never falls back
    below what was read (MySQL before 8.0 recomputes it from the table's highest id at restart)."""
    return (f"SELECT id FROM {changelog(config)} WHERE id < %s AND created_at < NOW(6) - INTERVAL %s SECOND "
            f"ORDER BY id LIMIT {PRUNE_BATCH}")


def prune(config: ChangeFeedSource, count: int) -> str:
    """Delete `count` rows by id (%s each). By id, not by range: a range delete would lock the row past its end,
    which may belong to a transaction still open, and wait for it."""
    return f"DELETE FROM {changelog(config)} WHERE id IN ({', '.join(['%s'] * count)})"
