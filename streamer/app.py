"""``faust -A streamer.app worker -l info``: the worker configured by the environment, for Faust's own
command line (``streamrec worker`` builds the same one; see :mod:`streamer.worker.assembly`)."""

from streamer.worker.assembly import worker_from_env

app = worker_from_env().app
