"""The change feed on a real MariaDB (the MySQL dialect): the installer's SQL (install, again, uninstall,
dry run), exactly-once delivery with a low id committed last and a rolled-back one, concurrent writers, resume
after a killed connection and a restarted server, bounded batches, pruning that never drops an undelivered row,
the exporter's series, and config errors."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import asyncmy
import httpx
import pytest

from collectors import build_collectors
from collectors.change_feed import mysql as sql
from collectors.change_feed.mysql_reader import MySQLChangeFeedCollector
from exporters.server import start_exporter
from monitoring.config import ChangeFeedSource, ConfigError, load_config
from monitoring.health import State
from monitoring.runtime import Supervisor
from monitoring.store import Store
from pipewatch.local.mariadb import LocalMariaDB
from tests.services import async_wait_until
from tests.test_exporter import PROMTOOL, _samples

PIPELINE = "shop"


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory):
    """One MariaDB for the module; tests keep to databases of their own (see `my_db`)."""
    server = LocalMariaDB(tmp_path_factory.mktemp("mariadb")).start()
    yield server
    server.stop()


@pytest.fixture
def my_db(request) -> str:
    """A database name unique to the test."""
    return "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]


def _dsn(server: LocalMariaDB, database: str) -> str:
    return f"mysql://root@127.0.0.1:{server.port}/{database}"


def _feed(server: LocalMariaDB, database: str, **settings) -> ChangeFeedSource:
    return ChangeFeedSource.model_validate({
        "dsn": _dsn(server, database),
        "entities": [{"name": "Order", "table": "orders", "key": "order_key"},
                     {"name": "Order Item", "table": "order items", "key": "id", "fields": ["sku"],
                      "events": ["insert"]}],
        **settings})


async def _connect(server: LocalMariaDB, database: str | None = None) -> asyncmy.Connection:
    return await asyncmy.connect(host="127.0.0.1", port=server.port, user="root", db=database, autocommit=True)


async def _sql(connection: asyncmy.Connection, statement: str, *args) -> list[tuple]:
    async with connection.cursor() as cursor:
        await cursor.execute(statement, args or None)
        return list(await cursor.fetchall())


async def _tables(server: LocalMariaDB, database: str) -> None:
    connection = await _connect(server)
    try:
        await _sql(connection, f"DROP DATABASE IF EXISTS `{database}`")
        await _sql(connection, f"CREATE DATABASE `{database}`")
        await _sql(connection, f"CREATE TABLE `{database}`.orders (order_key BIGINT PRIMARY KEY, status TEXT, "
                               f"total DECIMAL(10, 2), note TEXT)")
        await _sql(connection, f"CREATE TABLE `{database}`.`order items` (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
                               f"order_key BIGINT, sku TEXT)")
    finally:
        connection.close()


async def _install(server: LocalMariaDB, feed: ChangeFeedSource) -> None:
    connection = await _connect(server, feed.db_schema)
    try:
        columns = {}
        for entity in feed.entities:
            found = None if entity.fields else [row[0] for row in await _sql(
                connection, sql.columns_query(), feed.db_schema, entity.table)]
            columns[entity.name] = sql.payload_columns(entity, found)
        for statement in sql.install(feed, columns):
            await _sql(connection, statement)
    finally:
        connection.close()


async def _setup(server: LocalMariaDB, database: str, **settings) -> ChangeFeedSource:
    await _tables(server, database)
    feed = _feed(server, database, **settings)
    await _install(server, feed)
    return feed


def _delivered(store: Store, collector: MySQLChangeFeedCollector) -> list[tuple[str, str, str | None]]:
    return [(row.entity, row.event_type, row.key) for row in store.feed_since(collector.source, 0)]


async def _drain(store: Store, collector: MySQLChangeFeedCollector, expected: int, timeout: float = 20) -> None:
    async def enough() -> bool:
        await collector.collect(store)
        return collector.delivered >= expected

    await async_wait_until(enough, timeout, what=f"{expected} delivered changes (have {collector.delivered})")


# -- the installer and the config ------------------------------------------------------------------


def _pipewatch(config, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipewatch.cli", "change-feed", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60)


async def test_installer_dry_run_install_uninstall_install(mariadb, my_db, tmp_path):
    await _tables(mariadb, my_db)
    config = tmp_path / "pipewatch.yml"
    config.write_text(
        "pipelines:\n"
        f"  - name: {PIPELINE}\n"
        "    change_feed:\n"
        f"      dsn: \"{_dsn(mariadb, my_db)}\"\n"
        "      entities:\n"
        "        - {name: Order, table: orders, key: order_key}\n"
        "        - {name: Order Item, table: order items, key: id, fields: [sku], events: [insert]}\n")

    def run(*args: str) -> str:
        done = _pipewatch(config, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    connection = await _connect(mariadb, my_db)
    try:
        dry = run("install", "--dry-run")
        assert f"CREATE TABLE IF NOT EXISTS `{my_db}`.`db_events` (" in dry
        # Without `fields`: every column of the table, in table order, read from the database.
        assert (f"CREATE TRIGGER `{my_db}`.`db_events_order_update` AFTER UPDATE ON `{my_db}`.`orders` FOR EACH ROW\n"
                f"INSERT INTO `{my_db}`.`db_events` (entity, event_type, row_key, payload, created_at) VALUES ("
                f"'Order', 'update', CAST(NEW.`order_key` AS CHAR), JSON_OBJECT('order_key', NEW.`order_key`, "
                f"'status', NEW.`status`, 'total', NEW.`total`, 'note', NEW.`note`), SYSDATE(6));") in dry
        assert "JSON_OBJECT('order_key', OLD.`order_key`" in dry  # a delete carries the row as it was
        assert (f"AFTER INSERT ON `{my_db}`.`order items` FOR EACH ROW\nINSERT INTO `{my_db}`.`db_events` (entity, "
                f"event_type, row_key, payload, created_at) VALUES ('Order Item', 'insert', CAST(NEW.`id` AS CHAR), "
                f"JSON_OBJECT('id', NEW.`id`, 'sku', NEW.`sku`), SYSDATE(6));") in dry
        assert await _sql(connection, "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s "
                                      "AND table_name = 'db_events'", my_db) == [(0,)]  # dry

        async def triggers() -> list[str]:
            rows = await _sql(connection, "SELECT trigger_name FROM information_schema.triggers "
                                          "WHERE trigger_schema = %s ORDER BY trigger_name", my_db)
            return [row[0] for row in rows]

        expected = ["db_events_order_delete", "db_events_order_insert", "db_events_order_item_insert",
                    "db_events_order_update"]
        target = _feed(mariadb, my_db).target
        assert target == f"root@127.0.0.1:{mariadb.port} database {my_db}: {my_db}.db_events"
        assert run("install").strip() == f"pipeline {PIPELINE}: change feed installed ({target}, 2 entities)"
        run("install")  # again: harmless
        assert await triggers() == expected
        await _sql(connection, "INSERT INTO orders VALUES (1, 'new', 9.5, 'x')")
        await _sql(connection, "INSERT INTO `order items` (order_key, sku) VALUES (1, 'a''b')")
        assert await _sql(connection, "SELECT entity, event_type, row_key, payload FROM db_events ORDER BY id") == [
            ("Order", "insert", "1", '{"order_key": 1, "status": "new", "total": 9.50, "note": "x"}'),
            ("Order Item", "insert", "1", '{"id": 1, "sku": "a\'b"}')]

        assert "DROP TABLE IF EXISTS" in run("uninstall", "--dry-run")
        assert await triggers() == expected  # dry
        run("uninstall")
        assert await triggers() == []
        assert await _sql(connection, "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s "
                                      "AND table_name = 'db_events'", my_db) == [(0,)]
        run("install")
        assert await triggers() == expected
    finally:
        connection.close()


def test_identifiers_are_quoted_with_backticks_doubled(mariadb):
    feed = ChangeFeedSource.model_validate({
        "dsn": "mysql://pipewatch@db.example:3306/shop", "changelog_table": "db events",
        "entities": [{"name": "Order", "table": "orders", "key": "order_key", "fields": ["status"]}]})
    assert sql.quote("a`b") == "`a``b`"
    assert sql.literal("it's a \\ test") == "'it''s a \\\\ test'"
    statements = sql.install(feed, {"Order": sql.payload_columns(feed.entities[0], None)})
    assert statements[0].startswith("CREATE TABLE IF NOT EXISTS `shop`.`db events` (")
    assert "JSON_OBJECT('order_key', NEW.`order_key`, 'status', NEW.`status`)" in statements[2]
    assert sql.uninstall(feed)[-1] == "DROP TABLE IF EXISTS `shop`.`db events`"


def test_install_of_an_entity_without_fields_whose_table_is_missing_names_it(mariadb, my_db, tmp_path):
    mariadb.sql(f"DROP DATABASE IF EXISTS `{my_db}`; CREATE DATABASE `{my_db}`")
    config = tmp_path / "pipewatch.yml"
    config.write_text(
        "pipelines:\n"
        f"  - name: {PIPELINE}\n"
        "    change_feed:\n"
        f"      dsn: \"{_dsn(mariadb, my_db)}\"\n"
        "      entities:\n"
        "        - {name: Order, table: nowhere, key: order_key}\n")
    done = _pipewatch(config, "install", "--dry-run")
    assert done.returncode == 2
    assert done.stderr.strip() == (f"pipewatch change-feed install: pipeline {PIPELINE}: entity 'Order': no `fields` "
                                   f"given and the columns of its table could not be read (does 'nowhere' exist?)")


def test_config_accepts_mysql_and_keeps_passwords_out_of_the_url(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    feed = ChangeFeedSource.model_validate({
        "dsn": "mysql://watcher@db.example:3307/shop", "password_file": str(secret),
        "entities": [{"name": "Order", "table": "orders", "key": "order_key"}]})
    assert (feed.dialect, feed.db_schema, feed.poll_interval_seconds, feed.listen) == ("mysql", "shop", 0.1, False)
    assert sql.connect_arguments(feed) == {"user": "watcher", "db": "shop", "autocommit": True, "charset": "utf8mb4",
                                           "host": "db.example", "port": 3307, "password": "s3cret"}
    socket_feed = ChangeFeedSource.model_validate({
        "dsn": "mysql://watcher@localhost/shop?unix_socket=/run/mysqld/mysqld.sock", "schema": "other",
        "poll_interval_seconds": 0.25, "entities": [{"name": "Order", "table": "orders", "key": "order_key"}]})
    assert (socket_feed.db_schema, socket_feed.poll_interval_seconds) == ("other", 0.25)
    assert sql.connect_arguments(socket_feed)["unix_socket"] == "/run/mysqld/mysqld.sock"
    assert "host" not in sql.connect_arguments(socket_feed)
    assert ChangeFeedSource.model_validate({"dsn": "postgresql://u@h/db", "entities": [
        {"name": "Order", "table": "orders", "key": "order_key"}]}).dialect == "postgresql"

    cases = {
        "mysql://watcher:hunter2@db.example/shop": "a password in the URL is not allowed",
        "mysql://watcher@db.example/shop?password=hunter2": "a password in the URL is not allowed",
        "mysql://watcher@db.example/": "a mysql:// URL must name its database",
        "oracle://watcher@db.example/shop": "must be a postgresql:// or mysql:// URL",
    }
    for dsn, problem in cases.items():
        config = tmp_path / "bad.yml"
        config.write_text(f"pipelines:\n  - name: shop\n    change_feed:\n      dsn: \"{dsn}\"\n      entities:\n"
                          "        - {name: Order, table: orders, key: order_key}\n")
        with pytest.raises(ConfigError) as caught:
            load_config(config)
        assert "pipelines[0].change_feed.dsn" in str(caught.value) and problem in str(caught.value)
        assert "hunter2" not in str(caught.value)
    config = tmp_path / "listen.yml"
    config.write_text("pipelines:\n  - name: shop\n    change_feed:\n      dsn: \"mysql://u@h/shop\"\n"
                      "      listen: true\n      entities:\n        - {name: Order, table: orders, key: order_key}\n")
    with pytest.raises(ConfigError, match="MySQL and MariaDB have no LISTEN/NOTIFY"):
        load_config(config)
    # The profiling source stays PostgreSQL-only.
    config.write_text("pipelines:\n  - name: shop\n    profiling:\n      dsn: \"mysql://u@h/shop\"\n")
    with pytest.raises(ConfigError, match="must be a postgresql:// URL"):
        load_config(config)


# -- delivery ------------------------------------------------------------------------------------


async def test_a_low_id_committed_last_is_delivered_once_and_in_full(mariadb, my_db):
    feed = await _setup(mariadb, my_db)
    store = Store()
    collector, = build_collectors(load_config_for(feed))
    assert isinstance(collector, MySQLChangeFeedCollector)
    slow, fast, doomed = (await _connect(mariadb, my_db), await _connect(mariadb, my_db),
                          await _connect(mariadb, my_db))
    try:
        await collector.collect(store)  # starts at the present
        await _sql(slow, "BEGIN")
        await _sql(slow, "INSERT INTO orders VALUES (1, 'slow', 1, '')")  # takes the low id
        await _sql(doomed, "BEGIN")
        await _sql(doomed, "INSERT INTO orders VALUES (9, 'doomed', 1, '')")  # its id is never committed
        for key in (2, 3):
            await _sql(fast, "INSERT INTO orders VALUES (%s, 'fast', 1, '')", key)
        await _drain(store, collector, 2)
        assert _delivered(store, collector) == [("Order", "insert", "2"), ("Order", "insert", "3")]
        assert collector.holes == [(1, 2)]
        await _sql(doomed, "ROLLBACK")
        await _sql(slow, "COMMIT")
        await _drain(store, collector, 3)
        await _sql(fast, "UPDATE orders SET status = 'paid' WHERE order_key = 2")
        await _sql(fast, "DELETE FROM orders WHERE order_key = 3")
        await _drain(store, collector, 5)
        await async_wait_until(lambda: _settled(store, collector), 10, what="the rolled-back id to be settled")
        assert _delivered(store, collector) == [
            ("Order", "insert", "2"), ("Order", "insert", "3"), ("Order", "insert", "1"),
            ("Order", "update", "2"), ("Order", "delete", "3")]
        assert collector.settled == 1
        rows = store.feed_since(collector.source, 0)
        assert rows[3].payload == {"order_key": 2, "status": "paid", "total": 1, "note": ""}
        assert rows[4].payload["order_key"] == 3  # a delete carries the row as it was
        assert all(0 <= row.delivered_at - row.changed_at < 15 for row in rows)
    finally:
        for connection in (slow, fast, doomed):
            connection.close()
        await collector.close()


async def _settled(store: Store, collector: MySQLChangeFeedCollector) -> bool:
    await collector.collect(store)
    return collector.holes == []


def load_config_for(feed: ChangeFeedSource):
    """A Config with one pipeline holding `feed` (what build_collectors takes)."""
    from monitoring.config import Config

    return Config.model_validate({"pipelines": [{"name": PIPELINE, "change_feed": feed.model_dump(by_alias=True)
                                                 | {"dsn": feed.dsn.get_secret_value()}}]})


async def test_concurrent_writers_every_change_exactly_once(mariadb, my_db):
    feed = await _setup(mariadb, my_db, batch_size=50)
    store, collector = Store(), MySQLChangeFeedCollector(PIPELINE, feed)
    await collector.collect(store)
    writers, per_writer = 4, 150

    async def write(writer: int) -> None:
        connection = await _connect(mariadb, my_db)
        try:
            for i in range(per_writer):
                key = writer * 1000 + i
                await _sql(connection, "BEGIN")
                await _sql(connection, "INSERT INTO orders VALUES (%s, 'new', 1, '')", key)
                if i % 3 == 0:  # some transactions write two entities
                    await _sql(connection, "INSERT INTO `order items` (order_key, sku) VALUES (%s, 'sku')", key)
                if i % 10 == 5:  # and some roll back: holes that never fill
                    await _sql(connection, "ROLLBACK")
                else:
                    await _sql(connection, "COMMIT")
        finally:
            connection.close()

    async def read_until_done(done: asyncio.Event) -> None:
        while not done.is_set():
            await collector.collect(store)

    done = asyncio.Event()
    reader = asyncio.create_task(read_until_done(done))
    await asyncio.gather(*(write(w) for w in range(writers)))
    committed = [i for i in range(per_writer) if i % 10 != 5]
    expected = writers * len(committed) + writers * len([i for i in committed if i % 3 == 0])
    await async_wait_until(lambda: collector.delivered >= expected, 30, what="every change delivered")
    await async_wait_until(lambda: not collector.holes, 30, what="every hole settled")
    done.set()
    await reader
    await collector.collect(store)
    await collector.close()
    delivered = _delivered(store, collector)
    orders = [key for entity, _, key in delivered if entity == "Order"]
    assert len(delivered) == expected == collector.delivered
    assert sorted(orders, key=int) == [str(w * 1000 + i) for w in range(writers) for i in committed]
    assert collector.settled == writers * sum(2 if i % 3 == 0 else 1 for i in range(per_writer) if i % 10 == 5)


async def test_batches_are_bounded_and_a_backlog_is_counted(mariadb, my_db):
    feed = await _setup(mariadb, my_db, batch_size=10)
    store, collector = Store(), MySQLChangeFeedCollector(PIPELINE, feed)
    writer = await _connect(mariadb, my_db)
    try:
        await collector.collect(store)
        await _sql(writer, "INSERT INTO orders (order_key, status) SELECT seq, 'bulk' FROM seq_1_to_250")
        reads = await collector.collect(store)
        assert collector.delivered == 200  # 20 batches of 10, then the read ends: the page stays live
        assert reads == 21  # 20 batches and the backlog count
        assert collector._backlog == 50
        await collector.collect(store)  # woken: no poll interval to wait
        assert collector.delivered == 250 and collector._backlog == 0
        assert [row.key for row in store.feed_since(collector.source, 0)][-3:] == ["248", "249", "250"]
    finally:
        writer.close()
        await collector.close()


async def test_a_connection_killed_halfway_through_a_read_loses_and_repeats_nothing(mariadb, my_db):
    feed = await _setup(mariadb, my_db, batch_size=10)
    store, collector = Store(), MySQLChangeFeedCollector(PIPELINE, feed)
    admin = await _connect(mariadb, my_db)
    fetch, batches = collector._fetch, []

    async def fetch_then_kill_before_the_second_batch(query: str, *args) -> list[dict]:
        if query == sql.read_new(feed):
            batches.append(args)
            if len(batches) == 2:  # the server cuts the reader's connection: its next query fails for real
                await _sql(admin, f"KILL CONNECTION {int(collector._connection.thread_id())}")
        return await fetch(query, *args)

    try:
        await collector.collect(store)
        await _sql(admin, "INSERT INTO orders (order_key, status) SELECT seq, 'bulk' FROM seq_1_to_35")
        collector._fetch = fetch_then_kill_before_the_second_batch
        with pytest.raises(Exception) as failed:
            await collector.collect(store)
        assert failed.value.category == "connection"
        assert collector.delivered == 10  # the first batch, read before the cut, is delivered
        collector._fetch = fetch
        await _drain(store, collector, 35)
        for _ in range(3):
            await collector.collect(store)
        assert [row.key for row in store.feed_since(collector.source, 0)] == [str(k) for k in range(1, 36)]
    finally:
        admin.close()
        await collector.close()


async def test_resume_after_a_killed_connection_and_a_restarted_server(tmp_path, my_db):
    server = LocalMariaDB(tmp_path).start()
    try:
        feed = await _setup(server, my_db)
        store, collector = Store(), MySQLChangeFeedCollector(PIPELINE, feed)
        supervisor = Supervisor(store, [collector], max_backoff=0.5)

        async def run() -> State:
            await supervisor.run_once(collector)
            return store.health()[collector.source].state

        async def insert(*keys: int) -> None:
            connection = await _connect(server, my_db)
            try:
                for key in keys:
                    await _sql(connection, "INSERT INTO orders VALUES (%s, 'new', 1, '')", key)
            finally:
                connection.close()

        async def delivered(count: int) -> bool:
            await run()
            return collector.delivered >= count

        assert await run() is State.UP
        await insert(1, 2)
        await async_wait_until(lambda: delivered(2), 10, what="two changes")

        admin = await _connect(server)
        threads: list = []

        async def only_the_readers() -> bool:
            # The inserting connections are closed from the client's side: the server drops them a moment later.
            threads[:] = await _sql(admin, "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> "
                                           "CONNECTION_ID()", my_db)
            return len(threads) == 1

        await async_wait_until(only_the_readers, 10, what="the reader's connection alone on the database")
        for (thread,) in threads:
            await _sql(admin, f"KILL CONNECTION {int(thread)}")
        admin.close()
        await insert(3)
        await async_wait_until(lambda: delivered(3), 10, what="the change after the killed connection")

        slow = await _connect(server, my_db)
        await _sql(slow, "BEGIN")
        await _sql(slow, "INSERT INTO orders VALUES (40, 'lost in the restart', 1, '')")  # rolled back by it
        await insert(4)
        await async_wait_until(lambda: delivered(4), 10, what="the change beside the open transaction")
        assert collector.holes
        server.stop()
        slow.close()
        assert await run() is State.DOWN
        assert store.health()[collector.source].error_category in ("connection", "connection_refused")
        server.start()
        await insert(5, 6)
        await async_wait_until(lambda: delivered(6), 20, what="changes after a restart")
        await async_wait_until(lambda: _settled(store, collector), 10, what="the restart's rolled-back id settled")
        assert [key for _, _, key in _delivered(store, collector)] == ["1", "2", "3", "4", "5", "6"]
        assert store.health()[collector.source].state is State.UP
        await collector.close()
    finally:
        server.stop()


async def test_pruning_deletes_only_delivered_rows(mariadb, my_db):
    feed = await _setup(mariadb, my_db, retention_seconds=60, prune_interval_seconds=1)
    store, collector = Store(), MySQLChangeFeedCollector(PIPELINE, feed)
    writer, holder = await _connect(mariadb, my_db), await _connect(mariadb, my_db)
    old = "NOW(6) - INTERVAL 2 HOUR"

    async def count(key: str) -> int:
        return (await _sql(writer, "SELECT count(*) FROM db_events WHERE row_key = %s", key))[0][0]

    try:
        await collector.collect(store)
        await _sql(writer, f"INSERT INTO db_events (entity, event_type, row_key, payload, created_at) "
                           f"VALUES ('Order', 'insert', '1', '{{\"order_key\": 1}}', {old})")
        await _drain(store, collector, 1)
        await _sql(holder, "BEGIN")  # an old row of a transaction still open: not delivered yet
        await _sql(holder, f"INSERT INTO db_events (entity, event_type, row_key, payload, created_at) "
                           f"VALUES ('Order', 'insert', '2', '{{\"order_key\": 2}}', {old})")
        for key in ("3", "4"):  # old rows committed after it, above its id
            await _sql(writer, f"INSERT INTO db_events (entity, event_type, row_key, payload, created_at) "
                               f"VALUES ('Order', 'insert', '{key}', '{{\"order_key\": {key}}}', {old})")
        await _drain(store, collector, 3)

        async def pruned() -> bool:
            await collector.collect(store)
            return await count("1") == 0

        await async_wait_until(pruned, 15, what="the delivered old row to be pruned")
        assert (await count("3"), await count("4")) == (1, 1)  # delivered, but above the open hole: kept
        await _sql(holder, "COMMIT")
        assert await count("2") == 1  # not lost
        await _drain(store, collector, 4)
        assert [key for _, _, key in _delivered(store, collector)] == ["1", "3", "4", "2"]

        async def pruned_up_to_the_newest() -> bool:
            await collector.collect(store)
            return [row[0] for row in await _sql(writer, "SELECT row_key FROM db_events")] == ["4"]

        # Once the hole is filled everything delivered goes but the newest row (it keeps AUTO_INCREMENT above it).
        await async_wait_until(pruned_up_to_the_newest, 15, what="every delivered row but the newest pruned")
    finally:
        writer.close()
        holder.close()
        await collector.close()


async def test_exporter_serves_counts_delay_histogram_and_backlog(mariadb, my_db):
    feed = await _setup(mariadb, my_db)
    store, collector = Store(), MySQLChangeFeedCollector(PIPELINE, feed)
    supervisor = Supervisor(store, [collector])
    writer = await _connect(mariadb, my_db)
    try:
        await supervisor.run_once(collector)
        for key in range(5):
            await _sql(writer, "INSERT INTO orders VALUES (%s, 'new', 1, '<script>alert(1)</script>')", key)
        await _sql(writer, "UPDATE orders SET status = 'paid' WHERE order_key < 2")

        async def counted() -> bool:
            await supervisor.run_once(collector)
            point = store.latest("db_change_events_total", (PIPELINE, "Order", "update"))
            return point is not None and point[1] == 2

        await async_wait_until(counted, 20, what="the counters to be written")
    finally:
        writer.close()
        await collector.close()
    assert store.feed_since(collector.source, 0)[0].payload["note"] == "<script>alert(1)</script>"
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
    lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


async def test_a_missing_changelog_and_a_refused_login_are_shown_with_what_to_do(mariadb, my_db, tmp_path):
    await _tables(mariadb, my_db)  # no install
    store, collector = Store(), MySQLChangeFeedCollector(PIPELINE, _feed(mariadb, my_db))
    supervisor = Supervisor(store, [collector])
    await supervisor.run_once(collector)
    health = store.health()[collector.source]
    assert (health.state, health.error_category) == (State.DOWN, "missing_table")
    assert "run `pipewatch change-feed install --config FILE`" in health.last_error
    await collector.close()

    mariadb.sql("CREATE USER IF NOT EXISTS 'watcher'@'127.0.0.1' IDENTIFIED BY 'right'")
    wrong = tmp_path / "password"
    wrong.write_text("wrong\n")
    feed = ChangeFeedSource.model_validate({
        "dsn": f"mysql://watcher@127.0.0.1:{mariadb.port}/{my_db}", "password_file": str(wrong),
        "entities": [{"name": "Order", "table": "orders", "key": "order_key"}]})
    store, collector = Store(), MySQLChangeFeedCollector(PIPELINE, feed)
    await Supervisor(store, [collector]).run_once(collector)
    health = store.health()[collector.source]
    assert (health.state, health.error_category) == (State.DOWN, "auth")
    assert "Access denied for user 'watcher'" in health.last_error and "wrong" not in health.last_error
    await collector.close()
