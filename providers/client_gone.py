"""Work for an HTTP request that stops when its client disconnects.

Starlette does not cancel a handler whose client has gone: an /llm request abandoned by its client
(ZuckZapGo gave up) would keep its upstream request, and a pooled upstream connection, until the
upstream answers. Once the request's body has been read, the next ASGI message can only be
`http.disconnect`, so waiting for it is how the departure is noticed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request
from zapvoice.providers.errors import ProviderError

log = logging.getLogger(__name__)
T = TypeVar("T")

CLIENT_CLOSED_REQUEST = 499  # nginx's status for it; nobody receives the answer


async def unless_client_leaves(request: Request, work: Awaitable[T]) -> T:
    """`work`'s result; cancelled, with a 499, if the client disconnects first. Call it after reading the body."""
    task = asyncio.ensure_future(work)
    departure = asyncio.ensure_future(request.receive())
    try:
        done, _ = await asyncio.wait({task, departure}, return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when this handler is cancelled
        departure.cancel()
        task.cancel()
    if task in done:
        return task.result()
    await asyncio.gather(task, return_exceptions=True)
    log.info("%s: the client left before the answer; its work was cancelled", request.url.path)
    raise ProviderError(CLIENT_CLOSED_REQUEST, "the client closed the connection before the answer")
