"""Open-loop HTTP load: GET requests sent at a fixed rate whatever the answers' latency, each timed from
the moment it was due, so a stalled server shows in the latency instead of slowing the load down."""

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

# More than enough connections for 200 requests/s answered within tens of milliseconds; each is
# opened once and kept alive, so connection set-up stays out of the figures after warm-up.
MAX_CONNECTIONS = 64
REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Target:
    url: str
    group: str  # what the figures are split by (e.g. "owner" or "forwarded")


@dataclass
class QuerySamples:
    due_s: list[float] = field(default_factory=list)  # per request: when it was due (monotonic)
    latency_ms: list[float] = field(default_factory=list)  # from due to the whole answer read
    status: list[int] = field(default_factory=list)  # 0: no answer (connection error or timeout)
    group: list[str] = field(default_factory=list)
    last_done_s: float = 0.0


async def run_queries(targets: Sequence[Target], rate: float, warmup: Sequence[str] = ()) -> QuerySamples:
    """GET every target in order, ``rate`` per second; ``warmup`` URLs first, untimed."""
    samples = QuerySamples()
    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(_get(session, url) for url in warmup))
        start = time.monotonic()
        pending = []
        for n, target in enumerate(targets):
            due = start + n / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            pending.append(asyncio.create_task(_timed(session, target, due, samples)))
        await asyncio.gather(*pending)
    return samples


async def _get(session: aiohttp.ClientSession, url: str) -> int:
    try:
        async with session.get(url) as response:
            await response.read()
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def _timed(session: aiohttp.ClientSession, target: Target, due: float, samples: QuerySamples) -> None:
    status = await _get(session, target.url)
    done = time.monotonic()
    samples.due_s.append(due)
    samples.latency_ms.append((done - due) * 1000)
    samples.status.append(status)
    samples.group.append(target.group)
    samples.last_done_s = max(samples.last_done_s, done)
