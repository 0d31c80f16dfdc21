"""The profiling collector's own error hints: a PostgreSQL login refused (the profiling database). Registered for
the profiling component when the package is imported."""

from __future__ import annotations

from collectors.postgres import login_hint
from monitoring.errors import register_hints

register_hints("profiling", login_hint, {"auth", "permission"})
