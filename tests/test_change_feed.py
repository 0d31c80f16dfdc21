"""The change feed on a real PostgreSQL: the installer's SQL, exactly-once delivery under concurrent
writers (a low id committing last included), wake-up on NOTIFY, resume after a cut connection and a
restarted server, pruning that never drops undelivered rows, and the exporter."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import asyncpg
import httpx

from collectors.change_feed import postgres as sql
from collectors.change_feed.collector import UNPARSED, ChangeFeedCollector
from exporters.server import start_exporter
from monitoring.config import ChangeFeedSource
from monitoring.health import State
from monitoring.runtime import Supervisor
from monitoring.store import Store
from pipewatch.local.postgres import LocalPostgres
from tests.services import async_wait_until
from tests.test_exporter import PROMTOOL, _samples

PIPELINE = "shop"


def _feed(dsn: str, schema: str, **settings) -> ChangeFeedSource:
    return ChangeFeedSource.model_validate({
        "dsn": dsn, "schema": schema, "channel": schema.lower(), "poll_interval_seconds": 0.5,
        "entities": [{"name": "Order", "table": "orders", "key": "order_key"},
                     {"name": "Order Item", "table": "order items", "key": "id", "events": ["insert"]}],
        **settings})


async def _tables(connection: asyncpg.Connection, schema: str) -> None:
    await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE; CREATE SCHEMA "{schema}"')
    await connection.execute(f'CREATE TABLE "{schema}".orders (order_key bigint PRIMARY KEY, status text, '
                             f'total numeric, note text)')
    await connection.execute(f'CREATE TABLE "{schema}"."order items" (id bigserial PRIMARY KEY, order_key bigint, '
                             f'sku text)')


async def _install(dsn: str, feed: ChangeFeedSource) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        async with connection.transaction():
            for statement in sql.install(feed):
                await connection.execute(statement)
    finally:
        await connection.close()


async def _setup(dsn: str, schema: str, **settings) -> ChangeFeedSource:
    connection = await asyncpg.connect(dsn)
    try:
        await _tables(connection, schema)
    finally:
        await connection.close()
    feed = _feed(dsn, schema, **settings)
    await _install(dsn, feed)
    return feed


def _delivered(store: Store, collector: ChangeFeedCollector) -> list[tuple[str, str, str | None]]:
    rows = store.feed_since(collector.source, 0)
    return [(row.entity, row.event_type, row.key) for row in rows]


async def _drain(store: Store, collector: ChangeFeedCollector, expected: int, timeout: float = 20) -> None:
    async def enough() -> bool:
        await collector.collect(store)
        return collector.delivered >= expected

    await async_wait_until(enough, timeout, what=f"{expected} delivered changes (have {collector.delivered})")


# -- the installer -------------------------------------------------------------------------------


async def test_installer_dry_run_install_uninstall_install(postgres, pg_schema, tmp_path):
    connection = await asyncpg.connect(postgres.dsn)
    try:
        await _tables(connection, pg_schema)
        config = tmp_path / "pipewatch.yml"
        config.write_text(
            "pipelines:\n"
            f"  - name: {PIPELINE}\n"
            "    change_feed:\n"
            f"      dsn: \"{postgres.dsn}\"\n"
            f"      schema: {pg_schema}\n"
            "      entities:\n"
            "        - {name: Order, table: orders, key: order_key}\n"
            "        - {name: Order Item, table: order items, key: id, events: [insert]}\n")
        pipewatch = [sys.executable, "-m", "pipewatch.cli", "change-feed"]

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            done = subprocess.run([*pipewatch, *args, "--config", str(config)], capture_output=True, text=True,
                                  timeout=60)
            assert done.returncode == 0, done.stderr
            return done

        dry = run("install", "--dry-run").stdout
        assert f'CREATE TABLE IF NOT EXISTS "{pg_schema}"."db_events"' in dry
        assert (f'CREATE TRIGGER "db_events_order_item_insert" AFTER INSERT ON "{pg_schema}"."order items" FOR EACH '
                f'ROW EXECUTE FUNCTION "{pg_schema}"."db_events_capture"(\'Order Item\', \'id\', '
                f"'pipewatch_db_events')") in dry
        assert await connection.fetchval("SELECT to_regclass($1)", f'"{pg_schema}".db_events') is None  # dry

        async def triggers() -> list[str]:
            rows = await connection.fetch("SELECT tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                                          "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 "
                                          "AND NOT t.tgisinternal ORDER BY tgname", pg_schema)
            return [row["tgname"] for row in rows]

        expected = ["db_events_order_delete", "db_events_order_insert", "db_events_order_item_insert",
                    "db_events_order_update"]
        target = _feed(postgres.dsn, pg_schema).target
        assert run("install").stdout.strip() == f"pipeline {PIPELINE}: change feed installed ({target}, 2 entities)"
        run("install")  # again: harmless
        assert await triggers() == expected
        await connection.execute(f'INSERT INTO "{pg_schema}".orders VALUES (1, \'new\', 9.5, \'x\')')
        assert await connection.fetchval(f'SELECT count(*) FROM "{pg_schema}".db_events') == 1

        run("uninstall")
        assert await triggers() == []
        assert await connection.fetchval("SELECT to_regclass($1)", f'"{pg_schema}".db_events') is None
        assert await connection.fetchval("SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                                         "WHERE n.nspname = $1", pg_schema) == 0
        run("install")
        assert await triggers() == expected
    finally:
        await connection.close()


# -- delivery ------------------------------------------------------------------------------------


async def test_a_low_id_committed_last_is_delivered_once_and_in_full(postgres, pg_schema):
    feed = await _setup(postgres.dsn, pg_schema)
    store, collector = Store(), ChangeFeedCollector(PIPELINE, feed)
    slow, fast = await asyncpg.connect(postgres.dsn), await asyncpg.connect(postgres.dsn)
    try:
        await collector.collect(store)  # starts at the present
        transaction = slow.transaction()
        await transaction.start()
        await slow.execute(f'INSERT INTO "{pg_schema}".orders VALUES (1, \'slow\', 1, \'\')')  # takes the low id
        for key in (2, 3):
            await fast.execute(f'INSERT INTO "{pg_schema}".orders VALUES ($1, \'fast\', 1, \'\')', key)
        await _drain(store, collector, 2)
        assert _delivered(store, collector) == [("Order", "insert", "2"), ("Order", "insert", "3")]
        await transaction.commit()
        await _drain(store, collector, 3)
        await fast.execute(f'UPDATE "{pg_schema}".orders SET status = \'paid\' WHERE order_key = 2')
        await fast.execute(f'DELETE FROM "{pg_schema}".orders WHERE order_key = 3')
        await _drain(store, collector, 5)
        for _ in range(3):
            await collector.collect(store)
        assert _delivered(store, collector) == [
            ("Order", "insert", "2"), ("Order", "insert", "3"), ("Order", "insert", "1"),
            ("Order", "update", "2"), ("Order", "delete", "3")]
        rows = store.feed_since(collector.source, 0)
        assert rows[3].payload == {"order_key": 2, "status": "paid", "total": 1, "note": ""}
        assert rows[4].payload["order_key"] == 3  # a delete carries the row as it was
    finally:
        await slow.close()
        await fast.close()
        await collector.close()


async def test_concurrent_writers_every_change_exactly_once(postgres, pg_schema):
    feed = await _setup(postgres.dsn, pg_schema, batch_size=50)
    store, collector = Store(), ChangeFeedCollector(PIPELINE, feed)
    await collector.collect(store)
    writers, per_writer = 4, 150

    async def write(writer: int) -> None:
        connection = await asyncpg.connect(postgres.dsn)
        try:
            for i in range(per_writer):
                key = writer * 1000 + i
                async with connection.transaction():
                    await connection.execute(f'INSERT INTO "{pg_schema}".orders VALUES ($1, \'new\', 1, \'\')', key)
                    if i % 3 == 0:  # some transactions write two entities
                        await connection.execute(f'INSERT INTO "{pg_schema}"."order items" (order_key, sku) '
                                                 f"VALUES ($1, 'sku')", key)
        finally:
            await connection.close()

    async def read_until_done(done: asyncio.Event) -> None:
        while not done.is_set():
            await collector.collect(store)

    done = asyncio.Event()
    reader = asyncio.create_task(read_until_done(done))
    await asyncio.gather(*(write(w) for w in range(writers)))
    expected = writers * per_writer + writers * len(range(0, per_writer, 3))
    await async_wait_until(lambda: collector.delivered >= expected, 30, what="every change delivered")
    done.set()
    await reader
    await collector.collect(store)
    await collector.close()
    delivered = _delivered(store, collector)
    orders = [key for entity, _, key in delivered if entity == "Order"]
    assert len(delivered) == expected == collector.delivered
    assert sorted(orders, key=int) == [str(w * 1000 + i) for w in range(writers) for i in range(per_writer)]
    assert len(set(orders)) == len(orders)


async def test_notify_wakes_the_reader_before_its_poll_interval(postgres, pg_schema):
    feed = await _setup(postgres.dsn, pg_schema, poll_interval_seconds=5)
    store, collector = Store(), ChangeFeedCollector(PIPELINE, feed)
    writer = await asyncpg.connect(postgres.dsn)
    try:
        await collector.collect(store)  # the first read, at once
        pending = asyncio.create_task(collector.collect(store))  # now waits for a notification, or 5 s
        await asyncio.sleep(0)
        started = time.monotonic()
        await writer.execute(f'INSERT INTO "{pg_schema}".orders VALUES (7, \'new\', 1, \'<script>alert(1)</script>\')')
        await asyncio.wait_for(pending, 4)
        assert time.monotonic() - started < 1.0
        assert _delivered(store, collector) == [("Order", "insert", "7")]
        rows = store.feed_since(collector.source, 0)
        assert 0 <= rows[0].delivered_at - rows[0].changed_at < 1.0
    finally:
        await writer.close()
        await collector.close()


async def test_resume_after_a_cut_connection_and_a_restarted_server(tmp_path, pg_schema):
    server = LocalPostgres(tmp_path).start()
    try:
        feed = await _setup(server.dsn, pg_schema)
        store, collector = Store(), ChangeFeedCollector(PIPELINE, feed)
        supervisor = Supervisor(store, [collector], max_backoff=0.5)

        async def run() -> State:
            await supervisor.run_once(collector)
            return store.health()[collector.source].state

        async def insert(*keys: int) -> None:
            connection = await asyncpg.connect(server.dsn)
            try:
                for key in keys:
                    await connection.execute(f'INSERT INTO "{pg_schema}".orders VALUES ($1, \'new\', 1, \'\')', key)
            finally:
                await connection.close()

        async def delivered(count: int) -> bool:
            await run()
            return collector.delivered >= count

        assert await run() is State.UP
        await insert(1, 2)
        await async_wait_until(lambda: delivered(2), 10, what="two changes")

        admin = await asyncpg.connect(server.dsn)
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = 'pipewatch change feed'")
        await admin.close()
        await insert(3)
        await async_wait_until(lambda: delivered(3), 10, what="the change after the cut")

        server.stop()
        assert await run() is State.DOWN
        server.start()
        await insert(4, 5)
        await async_wait_until(lambda: delivered(5), 20, what="changes after a restart")
        for _ in range(3):
            await run()
        assert [key for _, _, key in _delivered(store, collector)] == ["1", "2", "3", "4", "5"]
        assert store.health()[collector.source].state is State.UP
        await collector.close()
    finally:
        server.close()


async def test_pruning_deletes_only_delivered_rows(postgres, pg_schema):
    feed = await _setup(postgres.dsn, pg_schema, retention_seconds=60, prune_interval_seconds=1)
    store, collector = Store(), ChangeFeedCollector(PIPELINE, feed)
    table = sql.changelog(feed)
    writer, holder = await asyncpg.connect(postgres.dsn), await asyncpg.connect(postgres.dsn)
    old = "now() - interval '2 hours'"
    try:
        await collector.collect(store)
        await writer.execute(f"INSERT INTO {table} (entity, event_type, row_key, payload, created_at) "
                             f"VALUES ('Order', 'insert', '1', '{{\"order_key\": 1}}', {old})")
        await _drain(store, collector, 1)
        transaction = holder.transaction()
        await transaction.start()  # an old row of a transaction still open: not delivered yet
        await holder.execute(f"INSERT INTO {table} (entity, event_type, row_key, payload, created_at) "
                             f"VALUES ('Order', 'insert', '2', '{{\"order_key\": 2}}', {old})")

        async def pruned() -> bool:
            await collector.collect(store)
            return await writer.fetchval(f"SELECT count(*) FROM {table} WHERE row_key = '1'") == 0

        await async_wait_until(pruned, 15, what="the delivered old row to be pruned")
        await transaction.commit()
        assert await writer.fetchval(f"SELECT count(*) FROM {table} WHERE row_key = '2'") == 1  # not lost
        await _drain(store, collector, 2)
        assert [key for _, _, key in _delivered(store, collector)] == ["1", "2"]
    finally:
        await writer.close()
        await holder.close()
        await collector.close()


async def test_exporter_serves_counts_delay_histogram_and_backlog(postgres, pg_schema):
    feed = await _setup(postgres.dsn, pg_schema)
    store, collector = Store(), ChangeFeedCollector(PIPELINE, feed)
    supervisor = Supervisor(store, [collector])
    writer = await asyncpg.connect(postgres.dsn)
    try:
        await supervisor.run_once(collector)
        for key in range(5):
            await writer.execute(f'INSERT INTO "{pg_schema}".orders VALUES ($1, \'new\', 1, \'\')', key)
        await writer.execute(f'UPDATE "{pg_schema}".orders SET status = \'paid\' WHERE order_key < 2')

        async def counted() -> bool:
            await supervisor.run_once(collector)
            point = store.latest("db_change_events_total", (PIPELINE, "Order", "update"))
            return point is not None and point[1] == 2

        await async_wait_until(counted, 20, what="the counters to be written")
    finally:
        await writer.close()
        await collector.close()
    exporter = start_exporter(store, "127.0.0.1", 0)
    try:
        text = httpx.get(exporter.url, timeout=10).text
    finally:
        exporter.stop()
    samples = _samples(text)
    order = {("pipeline", PIPELINE), ("entity", "Order")}
    assert samples[("db_change_events_total", frozenset(order | {("event_type", "insert")}))] == 5
    assert samples[("db_change_events_total", frozenset(order | {("event_type", "update")}))] == 2
    assert samples[("db_change_events_total", frozenset(order | {("event_type", "delete")}))] == 0
    assert samples[("db_change_feed_delay_seconds_count", frozenset(order))] == 7
    assert samples[("db_change_feed_delay_seconds_bucket", frozenset(order | {("le", "+Inf")}))] == 7
    assert samples[("db_change_feed_delay_seconds_bucket", frozenset(order | {("le", "30.0")}))] == 7
    assert 0 < samples[("db_change_feed_delay_seconds_sum", frozenset(order))] < 7 * 2
    assert samples[("db_change_feed_backlog", frozenset({("pipeline", PIPELINE)}))] == 0
    assert samples[("db_change_feed_unparsed_total", frozenset(order))] == 0
    lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


# -- hostile data and least privilege ------------------------------------------------------------


async def test_a_row_nested_2000_deep_is_delivered_as_text_and_counted_with_the_rest_of_its_batch(postgres, pg_schema):
    feed = await _setup(postgres.dsn, pg_schema, max_value_chars=10_000)  # the whole text fits
    writer = await asyncpg.connect(postgres.dsn)
    store, collector = Store(), ChangeFeedCollector(PIPELINE, feed)
    deep = "[" * 2000 + "]" * 2000  # Python's json raises RecursionError on it; PostgreSQL takes it
    try:
        await writer.execute(f'ALTER TABLE "{pg_schema}".orders ADD COLUMN doc json')
        await collector.collect(store)  # started: what follows is delivered and counted
        async with writer.transaction():  # one transaction: the bad row sits inside one read batch
            for key in range(1, 6):
                await writer.execute(f'INSERT INTO "{pg_schema}".orders '
                                     'VALUES ($1, \'new\', $1::bigint, \'\', $2::json)',
                                     key, deep if key == 3 else '{"ok": true}')
        raw = await writer.fetchval(f'SELECT payload::text FROM "{pg_schema}".db_events WHERE row_key = \'3\'')
        await _drain(store, collector, 5)
        await collector.collect(store)  # the series are written at most once a second
        collector._series_written_at = 0.0
        await collector.collect(store)
    finally:
        await writer.close()
        await collector.close()
    rows = store.feed_since(collector.source, 0)
    assert [row.key for row in rows] == ["1", "2", "3", "4", "5"]
    assert rows[2].payload == {UNPARSED: raw} and raw.count("[") == 2000
    assert [rows[i].payload for i in (0, 1, 3, 4)] == [
        {"order_key": k, "status": "new", "total": k, "note": "", "doc": {"ok": True}} for k in (1, 2, 4, 5)]
    assert store.latest("db_change_feed_unparsed_total", (PIPELINE, "Order"))[1] == 1
    assert store.latest("db_change_events_total", (PIPELINE, "Order", "insert"))[1] == 5


async def test_long_values_are_kept_cut_to_max_value_chars_with_their_length(postgres, pg_schema):
    feed = await _setup(postgres.dsn, pg_schema, max_value_chars=100)
    writer = await asyncpg.connect(postgres.dsn)
    store, collector = Store(), ChangeFeedCollector(PIPELINE, feed)
    try:
        await collector.collect(store)
        await writer.execute(f'INSERT INTO "{pg_schema}".orders VALUES (1, \'new\', 1, $1)', "x" * 100_000)
        await writer.execute(f'INSERT INTO "{pg_schema}".orders VALUES (2, \'new\', 2, $1)', "y" * 100)
        await _drain(store, collector, 2)
    finally:
        await writer.close()
        await collector.close()
    long, short = store.feed_since(collector.source, 0)
    assert long.payload == {"order_key": 1, "status": "new", "total": 1,
                            "note": "x" * 100 + "… (cut: 100,000 characters)"}
    assert short.payload["note"] == "y" * 100  # at the bound: whole


async def test_writers_need_no_privilege_on_the_changelog(postgres, pg_schema):
    feed = await _setup(postgres.dsn, pg_schema)
    writer_role, function = f"{pg_schema}_writer", f'"{pg_schema}"."db_events_capture"()'
    admin = await asyncpg.connect(postgres.dsn)
    store, collector = Store(), ChangeFeedCollector(PIPELINE, feed)
    try:
        await admin.execute(f'DROP ROLE IF EXISTS "{writer_role}"; CREATE ROLE "{writer_role}"')
        await admin.execute(f'GRANT USAGE ON SCHEMA "{pg_schema}" TO "{writer_role}"; '
                            f'GRANT SELECT, INSERT, UPDATE, DELETE ON "{pg_schema}".orders TO "{writer_role}"')
        assert await admin.fetchrow(
            "SELECT prosecdef, proconfig, has_function_privilege($2, p.oid, 'EXECUTE') AS public_execute "
            "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1 "
            "AND p.proname = 'db_events_capture'", pg_schema, writer_role) == (
            True, ["search_path=pg_catalog, pg_temp"], False)
        await collector.collect(store)
        async with admin.transaction():
            await admin.execute(f'SET LOCAL ROLE "{writer_role}"')
            await admin.execute(f'INSERT INTO "{pg_schema}".orders VALUES (7, \'new\', 1, \'\')')
            await admin.execute(f'UPDATE "{pg_schema}".orders SET status = \'paid\' WHERE order_key = 7')
            await admin.execute(f'DELETE FROM "{pg_schema}".orders WHERE order_key = 7')
        for statement in (f'INSERT INTO "{pg_schema}".db_events (entity, event_type, payload) '
                          'VALUES (\'x\', \'x\', \'{}\')',
                          f'SELECT count(*) FROM "{pg_schema}".db_events', f'SELECT {function}'):
            async with admin.transaction():
                await admin.execute(f'SET LOCAL ROLE "{writer_role}"')
                try:
                    await admin.execute(statement)
                except asyncpg.InsufficientPrivilegeError:
                    continue
            raise AssertionError(f"the writer could run {statement}")
        await _drain(store, collector, 3)
    finally:
        await collector.close()
        await admin.execute(f'DROP OWNED BY "{writer_role}"; DROP ROLE "{writer_role}"')
        await admin.close()
    assert _delivered(store, collector) == [("Order", "insert", "7"), ("Order", "update", "7"),
                                            ("Order", "delete", "7")]
