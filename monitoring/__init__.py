"""pipewatch core: configuration, the store, the collector runtime and health."""
