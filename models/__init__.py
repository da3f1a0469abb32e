"""GRU4Rec in PyTorch: model, training, evaluation and artifact I/O. Imports nothing from Kafka."""
