"""What the PostgreSQL collectors (profiling, change feed) share: their failures, categorised for the
health line, with the hint that fits the collector."""

from __future__ import annotations

import re

import asyncpg

from monitoring.errors import HintContext
from monitoring.health import SourceError

DATABASE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
"""Exceptions a database call can raise that mean the source failed (not pipewatch)."""


class DatabaseError(SourceError):
    """A PostgreSQL call that failed, with the hint that fits the collector in its message."""


def classified(exc: BaseException, missing_table: str, permission: str) -> DatabaseError:
    """A DatabaseError for `exc`; `missing_table` and `permission` say what to do about those two."""
    if isinstance(exc, DatabaseError):
        return exc
    name = type(exc).__name__
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else name
    if isinstance(exc, asyncpg.UndefinedTableError):
        return DatabaseError("missing_table", f"{message} ({missing_table})")
    if isinstance(exc, (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)):
        return DatabaseError("auth", message)
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return DatabaseError("permission", f"{message} ({permission})")
    if isinstance(exc, ConnectionRefusedError) or "refused" in message.lower():
        return DatabaseError("connection_refused", message)
    if isinstance(exc, (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
                        asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError)):
        return DatabaseError("connection", f"{name}: {message}")
    return DatabaseError("database", f"{name}: {message}")


def login_hint(ctx: HintContext) -> str:
    """The hint for a login PostgreSQL refused (a wrong password, a role that does not exist); the profiling and
    change feed packages register it for their components' auth and permission errors."""
    user = re.search(r'authentication failed for user "([^"]+)"', ctx.message)
    if user:
        return (f'PostgreSQL rejected the password of user "{user.group(1)}": check the user in the dsn and the '
                "password given beside it (password, password_file, or PGPASSWORD / ~/.pgpass).")
    role = re.search(r'role "([^"]+)" does not exist', ctx.message)
    if role:
        return f'There is no PostgreSQL role "{role.group(1)}": check the user in the DSN.'
    return ""
