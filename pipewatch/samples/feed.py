"""TPC-H-like tables and a shop's writes to them, for the demo's change feed.

Customers and parts are created now and then, orders often, each with a few line items; orders
are updated as they move from open to shipped, and some are cancelled (deleted). The rate varies
over a minute between a trickle and a burst, so the feed's cards and table move.
"""

from __future__ import annotations

import asyncio
import math
import random
import time

import asyncpg

SCHEMA = "shop"
TABLES = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.customer (c_custkey bigserial PRIMARY KEY, c_name text NOT NULL,
    c_mktsegment text NOT NULL, c_acctbal numeric(12, 2) NOT NULL);
CREATE TABLE IF NOT EXISTS {SCHEMA}.part (p_partkey bigserial PRIMARY KEY, p_name text NOT NULL, p_brand text NOT NULL,
    p_retailprice numeric(12, 2) NOT NULL);
CREATE TABLE IF NOT EXISTS {SCHEMA}.orders (o_orderkey bigserial PRIMARY KEY, o_custkey bigint NOT NULL,
    o_orderstatus char(1) NOT NULL, o_totalprice numeric(12, 2) NOT NULL,
    o_orderdate date NOT NULL DEFAULT current_date,
    o_comment text NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS {SCHEMA}.lineitem (l_id bigserial PRIMARY KEY, l_orderkey bigint NOT NULL,
    l_partkey bigint NOT NULL, l_quantity int NOT NULL, l_extendedprice numeric(12, 2) NOT NULL,
    l_shipmode text NOT NULL);
"""
ENTITIES = [
    {"name": "Customer", "table": "customer", "schema": SCHEMA, "key": "c_custkey"},
    {"name": "Part", "table": "part", "schema": SCHEMA, "key": "p_partkey"},
    {"name": "Order", "table": "orders", "schema": SCHEMA, "key": "o_orderkey",
     "fields": ["o_orderstatus", "o_totalprice", "o_custkey"]},
    {"name": "Line Item", "table": "lineitem", "schema": SCHEMA, "key": "l_id", "events": ["insert"],
     "fields": ["l_orderkey", "l_quantity", "l_shipmode"]},
]
_SEGMENTS = ("AUTOMOBILE", "BUILDING", "FURNITURE", "HOUSEHOLD", "MACHINERY")
_MODES = ("AIR", "MAIL", "RAIL", "SHIP", "TRUCK")


async def create_tables(connection: asyncpg.Connection) -> None:
    await connection.execute(TABLES)


async def shop(dsn: str, stop: asyncio.Event, seed: int = 7) -> None:
    """Write orders (with line items), updates and the odd new customer or part until `stop` is set."""
    rng = random.Random(seed)
    connection = await asyncpg.connect(dsn)
    started = time.monotonic()
    try:
        customers = [await connection.fetchval(
            f"INSERT INTO {SCHEMA}.customer (c_name, c_mktsegment, c_acctbal) VALUES ($1, $2, $3) RETURNING c_custkey",
            f"Customer#{i:05d}", rng.choice(_SEGMENTS), round(rng.uniform(-999, 9999), 2)) for i in range(20)]
        parts = [await connection.fetchval(
            f"INSERT INTO {SCHEMA}.part (p_name, p_brand, p_retailprice) VALUES ($1, $2, $3) RETURNING p_partkey",
            f"part {i}", f"Brand#{rng.randint(11, 55)}", round(rng.uniform(900, 2000), 2)) for i in range(30)]
        open_orders: list[int] = []
        while not stop.is_set():
            # between 2 and 40 changes a second, over a one-minute wave
            rate = 2 + 38 * (0.5 + 0.5 * math.sin((time.monotonic() - started) / 60 * 2 * math.pi))
            await asyncio.sleep(1 / rate)
            roll = rng.random()
            if roll < 0.55 or not open_orders:
                async with connection.transaction():
                    order = await connection.fetchval(
                        f"INSERT INTO {SCHEMA}.orders (o_custkey, o_orderstatus, o_totalprice, o_comment) "
                        f"VALUES ($1, 'O', 0, $2) RETURNING o_orderkey", rng.choice(customers),
                        rng.choice(["", "rush", "gift wrap", "call before delivery"]))
                    total = 0.0
                    for _ in range(rng.randint(1, 4)):
                        price = round(rng.uniform(10, 500), 2)
                        total += price
                        await connection.execute(
                            f"INSERT INTO {SCHEMA}.lineitem (l_orderkey, l_partkey, l_quantity, l_extendedprice, "
                            f"l_shipmode) VALUES ($1, $2, $3, $4, $5)", order, rng.choice(parts), rng.randint(1, 50),
                            price, rng.choice(_MODES))
                    await connection.execute(f"UPDATE {SCHEMA}.orders SET o_totalprice = $1 WHERE o_orderkey = $2",
                                             round(total, 2), order)
                open_orders.append(order)
            elif roll < 0.9:
                order = open_orders.pop(rng.randrange(len(open_orders)))
                await connection.execute(f"UPDATE {SCHEMA}.orders SET o_orderstatus = 'F' WHERE o_orderkey = $1", order)
            elif roll < 0.95:
                order = open_orders.pop(rng.randrange(len(open_orders)))
                await connection.execute(f"DELETE FROM {SCHEMA}.orders WHERE o_orderkey = $1", order)
            else:
                customers.append(await connection.fetchval(
                    f"INSERT INTO {SCHEMA}.customer (c_name, c_mktsegment, c_acctbal) VALUES ($1, $2, $3) "
                    f"RETURNING c_custkey", f"Customer#{len(customers):05d}", rng.choice(_SEGMENTS),
                    round(rng.uniform(-999, 9999), 2)))
    finally:
        await connection.close()
