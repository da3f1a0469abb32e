"""streamrec's Kafka side: two services and their tools.

``worker/`` is the streamer (events in, lists out), ``retrainer/`` trains and announces models,
``registry`` is the model store and announcements both use, ``common/`` what both need (settings,
Kafka client configuration, topic admin, logging, the session rule), ``tools/`` local development
(a single-node broker, the demo, replay, score-stream). ``cli`` is the ``streamrec`` command and
``app`` the worker for ``faust -A streamer.app worker``.
"""
