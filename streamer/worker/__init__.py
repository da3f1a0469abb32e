"""The streamer worker, wired in :func:`streamer.worker.assembly.build_worker`.

Input records go through the router (``routing``, ``sequencing``, ``records``) to the sequencing
topic; the agent (``agents``) takes them in micro-batches to the ``BatchProcessor`` (``batches``):
state ``store`` -> ``engine`` (``advancing`` the states, ranking on the policy's scorer) ->
``list_encoding`` -> ``outbox``. ``offsets``/``seeking``/``consumer`` decide what is applied and
committed; ``model_feed`` which model serves; ``web`` the HTTP endpoints.
"""
