"""Exporters republish what is in the store; they never talk to sources."""
