"""Getting messages to sockets: the channel-layer groups, the long-lived push loop, and the pushes
that are not events (credentials ended, live positions).

Every server and worker process sends through here. Event rows are pushed by
`dispatch.events.push` (which marks them pushed); live positions by `push_live` (never stored,
never replayed); the end of a token's credentials by `sockets_close`.
"""
import asyncio
import json
import logging
import os
import threading

from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

# The consumer's handler for a pushed event is `event_push` (Channels maps "." to "_").
PUSH_TYPE = "event.push"
# The consumer's handler for a push-only message is `live_push`; unlike `event.push` it
# carries no seq, so it bypasses the replay bookkeeping.
LIVE_PUSH_TYPE = "live.push"
# A push waits this long for the channel layer before giving up (the row is already safe).
PUSH_TIMEOUT_S = 5.0


def user_group(user_id: int) -> str:
    """The channel-layer group holding every socket of one user."""
    return f"user.{user_id}"


# The event loop serving this process's sockets, if it serves any (see `serve_pushes_on`).
_serving_loop: asyncio.AbstractEventLoop | None = None


def serve_pushes_on(loop: asyncio.AbstractEventLoop) -> None:
    """Called by the consumer: pushes from plain threads (the embedded sweeper) go through `loop`.

    The in-memory layer's queues belong to the loop its sockets wait on; putting into them
    from another thread's loop would not wake that loop, and the push would sit unseen.
    """
    global _serving_loop
    _serving_loop = loop


# Sync callers with no serving loop (Celery worker threads, management commands) all push
# through one loop on a daemon thread: one channel-layer connection per process, where
# `async_to_sync` would make a new loop, and with Redis a new connection, for every push.
_push_loop: asyncio.AbstractEventLoop | None = None
_push_loop_lock = threading.Lock()


def _forget_push_loop_after_fork() -> None:
    # A forked child (Celery prefork) has the parent's loop object but not its thread.
    global _push_loop, _push_loop_lock
    _push_loop, _push_loop_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_push_loop_after_fork)


def _run_push_loop(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(started.set)
    loop.run_forever()


def push_loop() -> asyncio.AbstractEventLoop:
    """This process's long-lived push loop, started on first use (and anew in a forked child)."""
    global _push_loop
    with _push_loop_lock:
        if _push_loop is None or not _push_loop.is_running():
            loop, started = asyncio.new_event_loop(), threading.Event()
            threading.Thread(target=_run_push_loop, args=(loop, started), name="event-push", daemon=True).start()
            started.wait()
            _push_loop = loop
        return _push_loop


def encode(payload: dict) -> str:
    """A socket frame's JSON text: what `NotificationConsumer.send_json` would send for `payload`."""
    return json.dumps(payload)


# Pushes whose payload goes to the client as is: the frame's text rides in the message as "text",
# encoded here once per push rather than by each of a group's sockets.
_SENT_AS_IS = (PUSH_TYPE, LIVE_PUSH_TYPE)


def publish(layer, group: str, message: dict) -> None:
    """Send one message to a group; raises if the layer does.

    From a plain thread on the Redis layer: one blocking PUBLISH (`group_send_blocking`). Otherwise
    through this process's serving or push loop.
    """
    if message.get("type") in _SENT_AS_IS and "text" not in message:
        message = {**message, "text": encode(message["event"])}
    send_blocking = getattr(layer, "group_send_blocking", None)
    if send_blocking is not None and not _on_a_running_loop():
        try:
            send_blocking(group, message, timeout_s=PUSH_TIMEOUT_S)
            return
        except NotImplementedError:
            pass
    loop = _serving_loop
    if loop is None or not loop.is_running():
        loop = push_loop()
    # One publish per event; the layer fans out. Nothing here waits on any socket.
    future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop)
    try:
        future.result(timeout=PUSH_TIMEOUT_S)
    except BaseException:
        future.cancel()  # a push stuck on a dead Redis must not queue up behind others
        raise


def _on_a_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True  # a blocking call would stall the loop: the hop below is how a loop's caller publishes


# The consumer's handler for "these credentials ended" is `auth_ended`.
AUTH_ENDED_TYPE = "auth.ended"


def sockets_close(*, user_id: int, token_ids: list[int] | None = None, keep_token_id: int | None = None) -> None:
    """Close (4401) the user's open sockets, on every server process, that were opened with one of `token_ids`.

    With no `token_ids`: every socket of the user, except those of `keep_token_id`. Called
    after the commit that ended the credentials; never raises (a socket the message misses
    finds out at its next credential check, see `NotificationConsumer.event_push`).
    """
    message = {"type": AUTH_ENDED_TYPE, "token_ids": token_ids, "keep_token_id": keep_token_id}
    try:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            publish(layer, user_group(user_id), message)
        except Exception:
            log.warning("closing the sockets of user %s failed once; retrying", user_id)
            publish(layer, user_group(user_id), message)
    except Exception:
        log.exception("could not tell the sockets of user %s that their credentials ended", user_id)


def _live_message(payload: dict) -> dict:
    """A PROVIDER_LOCATION for a user's group, its frame encoded once for all their sockets."""
    return {"type": LIVE_PUSH_TYPE, "event": payload, "text": encode(payload)}


async def push_live_async(updates: list[tuple[int, dict]]) -> None:
    """`push_live` from a coroutine on the serving loop (a socket's ping): awaited, never raises."""
    try:
        layer = get_channel_layer()
        if layer is None:
            return
        for user_id, payload in updates:
            await layer.group_send(user_group(user_id), _live_message(payload))
    except Exception:
        log.exception("live push of %d updates failed; the next ping brings them again", len(updates))


def push_live(updates: list[tuple[int, dict]]) -> None:
    """Send each (user id, payload) to that user's sockets, once, through the push loop (no event loop made
    per ping). Never raises: the next ping is the retry."""
    try:
        layer = get_channel_layer()
        if layer is None:
            return
        for user_id, payload in updates:
            publish(layer, user_group(user_id), _live_message(payload))
    except Exception:
        log.exception("live push of %d updates failed; the next ping brings them again", len(updates))
