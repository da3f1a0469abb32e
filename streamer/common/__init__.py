"""What both services need: settings, Kafka client configuration and start-up probe, topic admin,
logging and the session rule."""
