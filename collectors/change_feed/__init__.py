"""The database change feed: triggers that write a changelog (one module per SQL dialect) and its reader."""
