"""The change feed collector's own error hints: a PostgreSQL or MySQL login refused (the change feed's database).
Registered for the change_feed component when the package is imported."""

from __future__ import annotations

import re

from collectors.postgres import login_hint
from monitoring.errors import HintContext, register_hints

register_hints("change_feed", login_hint, {"auth", "permission"})


def mysql_login_hint(ctx: HintContext) -> str:
    """A login MySQL or MariaDB refused."""
    user = re.search(r"Access denied for user '([^']*)'@", ctx.message)
    if user:
        return (f"MySQL/MariaDB refused the login of user '{user.group(1)}': check the user in the dsn and the "
                "password given beside it (password or password_file).")
    return ""


register_hints("change_feed", mysql_login_hint, {"auth", "permission"})
