"""Sending a query on to the worker that holds the user's state: one hop, never a loop.

The forwarded request carries :data:`FORWARDED_HEADER` (the forwarding worker's URL). A worker that
receives a forwarded request for a user it does not hold (the group rebalanced in between) refuses it
with 503 and a Retry-After instead of forwarding it again: two workers with different views of the
assignment could otherwise pass it back and forth.
"""

from collections.abc import Callable

import aiohttp

from streamer.worker.api_replies import Reply, error_reply

FORWARDED_HEADER = "X-Streamrec-Forwarded-By"
# The owner answers within milliseconds; one that takes this long is stalled or gone, and the client
# is better told to retry than kept waiting.
FORWARD_TIMEOUT_S = 2.0
_RELAYED_HEADERS = ("Retry-After",)


class Forwarder:
    def __init__(self, session: Callable[[], aiohttp.ClientSession], me: str) -> None:
        self._session = session  # created lazily: an aiohttp session belongs to the running loop
        self.me = me

    async def forward(self, owner: str, path_and_query: str) -> Reply:
        """GET ``path_and_query`` (raw, as received) from ``owner``; its answer, relayed as it is."""
        url = owner.rstrip("/") + path_and_query
        try:
            async with self._session().get(
                url,
                headers={FORWARDED_HEADER: self.me},
                timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S),
                allow_redirects=False,
            ) as response:
                body = await response.read()
                headers = {
                    name: response.headers[name] for name in _RELAYED_HEADERS if name in response.headers
                }
                return Reply(response.status, body, headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return error_reply("owner_unreachable", f"{owner} holds this user and did not answer: {exc!r}")
