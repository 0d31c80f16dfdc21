"""The Panel app served by `panel serve apps/` (a Bokeh directory app: main.py + app_hooks.py)."""
