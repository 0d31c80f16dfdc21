"""The change feed collector's own error hints: a PostgreSQL login refused (the change feed's database). Registered for
the change_feed component when the package is imported."""

from __future__ import annotations

from collectors.postgres import login_hint
from monitoring.errors import register_hints

register_hints("change_feed", login_hint, {"auth", "permission"})
