"""The pipewatch command and the processes it starts: the CLI, the service assembly (store, collectors,
exporter), the demo, local services and sample data. It sits on top: it imports every layer, and nothing
imports it but the apps' server hooks."""
