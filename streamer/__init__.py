"""Everything that talks to Kafka: the Faust app, its topics and tables, agents, model swap, CLI."""
