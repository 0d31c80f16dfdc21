"""Real local services for the demo, the tests and the benchmarks: a Kafka-protocol broker, PostgreSQL and Flink."""
