"""The PostgreSQL collectors' own error hints (collectors/postgres.py login_hint, registered by the profiling and
change feed packages for their components)."""

from __future__ import annotations

import collectors.change_feed  # noqa: F401  (registers the hints)
import collectors.profiling  # noqa: F401
from monitoring.errors import hint_for


def test_a_refused_login_and_a_missing_role():
    password = 'InvalidPasswordError: password authentication failed for user "bob"'
    for component in ("profiling", "change_feed"):
        assert hint_for("auth", password, "db:5432", component) == (
            'PostgreSQL rejected the password of user "bob": check the user in the dsn and the password given beside '
            "it (password, password_file, or PGPASSWORD / ~/.pgpass).")
        assert hint_for("auth", 'role "ghost" does not exist', "db:5432", component) == (
            'There is no PostgreSQL role "ghost": check the user in the DSN.')
    assert hint_for("database", password, "db:5432", "profiling") == ""  # (auth and permission errors only)
