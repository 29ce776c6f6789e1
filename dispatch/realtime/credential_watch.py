"""Re-checks the credentials of this process's open sockets together, off the push path.

Whatever ends a token or a user closes their sockets at once (`push.sockets_close`); only a
close message lost on the way (the channel layer was down) leaves a socket open past its
credentials. Such a socket is closed (4401) within AUTH_RECHECK_S: every AUTH_RECHECK_S one
task per event loop reads which of its sockets' tokens (or, for sockets opened with a
session's ticket, users) are still live, in one query per thousand ids. Checking per socket
before a push put a database round trip on the fan-out path (5,000 sockets: 5,000 queries
for one event).
"""
import asyncio
import logging
from weakref import WeakKeyDictionary

from channels.db import database_sync_to_async

from dispatch.services.accounts import credentials_live

log = logging.getLogger(__name__)

# A lost close message is made good within this many seconds.
AUTH_RECHECK_S = 60.0


class _Watch:
    """The sockets of one event loop, and the task that re-checks them."""

    def __init__(self):
        self.sockets: dict = {}  # consumer -> None: an ordered set, iterated while sockets come and go
        self.task: asyncio.Task | None = None

    def add(self, consumer) -> None:
        self.sockets[consumer] = None
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while self.sockets:
            await asyncio.sleep(AUTH_RECHECK_S)
            try:
                await self.check()
            except Exception:  # the database is away: try again next round, the sockets stay as they are
                log.warning("re-checking socket credentials failed", exc_info=True)

    async def check(self) -> None:
        """Close (4401) every watched socket whose token or user no longer lets it in."""
        sockets = list(self.sockets)
        token_ids = {s.token_id for s in sockets if s.token_id is not None}
        user_ids = {s.user_id for s in sockets if s.token_id is None}
        tokens, users = await database_sync_to_async(credentials_live)(token_ids=token_ids, user_ids=user_ids)
        for socket in sockets:
            live = (socket.token_id, socket.user_id) in tokens if socket.token_id is not None else \
                socket.user_id in users
            if not live and socket in self.sockets:
                await socket.end_for_auth()


_watches: "WeakKeyDictionary[asyncio.AbstractEventLoop, _Watch]" = WeakKeyDictionary()


def _watch() -> _Watch:
    loop = asyncio.get_running_loop()
    if loop not in _watches:
        _watches[loop] = _Watch()
    return _watches[loop]


def watch(consumer) -> None:
    """Re-check `consumer`'s credentials (its `user_id` and `token_id`) every AUTH_RECHECK_S until `unwatch`."""
    _watch().add(consumer)


def unwatch(consumer) -> None:
    _watch().sockets.pop(consumer, None)


async def check_now() -> None:
    """Re-check this loop's sockets at once (tests, and what the periodic task runs)."""
    await _watch().check()
