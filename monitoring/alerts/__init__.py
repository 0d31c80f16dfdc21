"""Alerting inside pipewatch: rules over the exported series, evaluated every second, for users without a
Prometheus and Alertmanager (docs/alerts.md). The core only decides; exporters/notify/ delivers."""
