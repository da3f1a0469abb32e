"""HTTP endpoints on the worker's web port: liveness, readiness and Prometheus metrics."""

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streamer import agents
from streamer.app import app
from streamer.metrics import REGISTRY, TABLES_RECOVERED


def readiness() -> dict[str, bool]:
    """What readiness needs: a model to serve and table state fully recovered from the changelog."""
    recovered = app.tables.recovery.completed.is_set() and not app.in_recovery and not app.rebalancing
    TABLES_RECOVERED.set(1 if recovered else 0)
    return {"model_loaded": agents.models.holder.version is not None, "tables_recovered": recovered}


@app.page("/healthz")
async def healthz(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
    return web.json({"status": "alive"})


@app.page("/readyz")
async def readyz(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
    checks = readiness()
    ready = all(checks.values())
    return web.json(
        {"ready": ready, "model_version": agents.models.holder.version, **checks},
        status=200 if ready else 503,
    )


@app.page("/metrics")
async def metrics(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
    readiness()
    # aiohttp takes the charset separately; the exposition format is UTF-8 text.
    content_type = CONTENT_TYPE_LATEST.replace("; charset=utf-8", "")
    return web.bytes(generate_latest(REGISTRY), content_type=content_type)
