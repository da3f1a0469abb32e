"""The retraining worker: a rolling window of recent events, periodic warm-started training,
evaluation against the serving model, and promotion through the model store and announcements."""
