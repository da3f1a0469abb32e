"""A running worker's Prometheus metrics, read over HTTP as Prometheus would."""

import urllib.request

from streamer.tools.worker_process import WorkerProcess


def metric_value(worker: WorkerProcess, name: str, label: str = "") -> float:
    """The sum of the samples of ``name`` (exactly that name), keeping only those whose labels
    contain ``label`` (e.g. ``'version="v1"'``); 0 if there is none."""
    with urllib.request.urlopen(
        f"http://127.0.0.1:{worker.env['STREAMREC_WEB_PORT']}/metrics", timeout=5
    ) as r:
        lines = r.read().decode().splitlines()
    return sum(
        float(line.split()[-1])
        for line in lines
        if line.split("{")[0].split(" ")[0] == name and label in line
    )
