"""Prometheus metrics of the streamer, served at ``/metrics``."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

EVENTS_IN = Counter("streamrec_events_in", "Input messages consumed", ["topic"], registry=REGISTRY)
LISTS_OUT = Counter("streamrec_lists_out", "Recommendation lists published", registry=REGISTRY)
DEAD_LETTERS = Counter(
    "streamrec_dead_letters", "Input messages sent to the dead-letter topic", ["reason"], registry=REGISTRY
)
DUPLICATES = Counter(
    "streamrec_duplicates_skipped", "Redelivered events that were applied before", registry=REGISTRY
)
REPEATED_EVENTS = Counter(
    "streamrec_repeated_events",
    "Events whose event id the user sent before: listed again from the unchanged state",
    registry=REGISTRY,
)
REENCODED = Counter(
    "streamrec_states_reencoded", "User states re-encoded under a new model version", registry=REGISTRY
)
NEW_SESSIONS = Counter("streamrec_new_sessions", "States reset at a session boundary", registry=REGISTRY)
BATCH_SIZE = Histogram(
    "streamrec_batch_size",
    "Events per micro-batch",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
    registry=REGISTRY,
)
END_TO_END_LATENCY = Histogram(
    "streamrec_end_to_end_latency_seconds",
    "Time from the event's Kafka timestamp to its list being acknowledged by Kafka",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
MODEL_INFO = Gauge(
    "streamrec_model_loaded", "1 for the model version being served", ["version"], registry=REGISTRY
)
TABLES_RECOVERED = Gauge(
    "streamrec_tables_recovered", "1 once table recovery has completed", registry=REGISTRY
)
BROKER_CONNECTED = Gauge(
    "streamrec_broker_connected",
    "1 while Kafka answers the worker's probes (0 after STREAMREC_BROKER_GRACE_S without an answer)",
    registry=REGISTRY,
)
MODEL_SWAP_REFUSED = Counter(
    "streamrec_model_swap_refused",
    "Announced models refused (the old one kept serving)",
    ["reason"],
    registry=REGISTRY,
)
FETCH_GAPS = Counter(
    "streamrec_fetch_gaps",
    "Times a partition jumped past unseen offsets (a rebalance dropped fetched records) and was re-read",
    registry=REGISTRY,
)
UNKNOWN_ITEMS = Counter(
    "streamrec_unknown_items",
    "Events on an item the serving model does not know: listed from the unchanged state or popularity",
    registry=REGISTRY,
)
ONLINE_PREDICTIONS = Counter(
    "streamrec_online_predictions",
    "Served lists followed by an event of the same session, by the version that ranked the list",
    ["version"],
    registry=REGISTRY,
)
ONLINE_HITS = Counter(
    "streamrec_online_hits",
    "Served lists that held the item of the user's next event, by the version that ranked the list",
    ["version"],
    registry=REGISTRY,
)
ONLINE_RECIPROCAL_RANK = Counter(
    "streamrec_online_reciprocal_rank",
    "Sum of 1/rank of the next event's item in the served list (0 when absent): MRR@K = this / predictions",
    ["version"],
    registry=REGISTRY,
)
LISTS_BY_BASIS = Counter(
    "streamrec_lists_by_basis",
    "Lists published, by what ranked them: model or popularity",
    ["basis"],
    registry=REGISTRY,
)
CATALOG_RECORDS_REFUSED = Counter(
    "streamrec_catalog_records_refused",
    "Item-catalog records ignored as malformed (the item keeps its previous entry)",
    ["reason"],
    registry=REGISTRY,
)
CATALOG_UNAVAILABLE = Gauge(
    "streamrec_catalog_unavailable_items",
    "Items the item-catalog topic marks unavailable (never listed)",
    registry=REGISTRY,
)
API_REQUEST_SECONDS = Histogram(
    "streamrec_api_request_seconds",
    "Web requests by route and status, from arrival to answer (forwarding included); _count counts them",
    ["route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
API_FORWARDED = Counter(
    "streamrec_api_forwarded",
    "Query API requests forwarded to the worker holding the user's state, by the status it answered",
    ["status"],
    registry=REGISTRY,
)
