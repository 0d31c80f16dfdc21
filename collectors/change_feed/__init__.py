"""The database change feed: triggers that write a changelog (one module per SQL dialect) and its reader."""

from collectors.change_feed import hints  # noqa: F401  (registers the source's error hints with the core)
