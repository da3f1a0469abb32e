"""Local development tools, never imported by the services: a single-node Kafka broker
(``kafka_local``), the demo, replay, score-stream and a worker-process helper for tests."""
