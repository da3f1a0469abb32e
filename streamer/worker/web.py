"""HTTP endpoints on the worker's web port: liveness, readiness and Prometheus metrics (the query API:
:mod:`streamer.worker.api`)."""

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streamer.worker.broker_watch import BrokerWatch
from streamer.worker.metrics import BROKER_CONNECTED, REGISTRY, TABLES_RECOVERED
from streamer.worker.owners import state_recovered
from streamer.worker.parts import Worker


def register_pages(worker: Worker) -> None:
    app, settings = worker.app, worker.settings
    broker = BrokerWatch(settings.worker.broker_grace_s)

    @app.task
    async def watch_broker() -> None:
        await broker.run(settings)

    def readiness() -> dict[str, bool]:
        """What readiness needs: something to serve (a model, or popularity when there is none yet),
        table state fully recovered from the changelog, and Kafka answering (within the grace period)."""
        recovered = state_recovered(app)
        connected = broker.connected()
        TABLES_RECOVERED.set(1 if recovered else 0)
        BROKER_CONNECTED.set(1 if connected else 0)
        return {
            "serving": worker.models.holder.version is not None,
            "tables_recovered": recovered,
            "broker_connected": connected,
        }

    @app.page("/healthz")
    async def healthz(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
        return web.json({"status": "alive"})

    @app.page("/readyz")
    async def readyz(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
        checks = readiness()
        ready = all(checks.values())
        return web.json(
            {"ready": ready, "model_version": worker.models.holder.version, **checks},
            status=200 if ready else 503,
        )

    @app.page("/metrics")
    async def metrics(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
        readiness()
        # aiohttp takes the charset separately; the exposition format is UTF-8 text.
        content_type = CONTENT_TYPE_LATEST.replace("; charset=utf-8", "")
        return web.bytes(generate_latest(REGISTRY), content_type=content_type)
