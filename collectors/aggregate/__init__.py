"""Readers of other pipewatch agents: a mirror of one agent's whole state, remote agents' summaries, and every
agent a Prometheus scrapes."""
