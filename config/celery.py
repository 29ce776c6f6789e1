"""The Celery app and the settings that make dispatch tasks survive crashes and redelivery.

Embedded (no REDIS_URL): tasks run eagerly in the process after commit, and a sweeper
thread (`dispatch.embedded`) makes offer timeouts fire.
"""
import logging
import os

from celery import Celery
from celery.signals import celeryd_after_setup, worker_ready
from kombu import Exchange, Queue

from dispatch.queue_presence import QueuePresence

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("dispatch")
app.config_from_object("django.conf:settings", namespace="CELERY")

OFFERS_QUEUE, HOUSEKEEPING_QUEUE, WEBHOOKS_QUEUE = "offers", "housekeeping", "webhooks"
# Reassignments (reject, release, offline → next offer) and offer expiry: the offers worker consumes
# this queue beside `offers`, and kombu's Redis transport takes from each in turn, so under a backlog
# of first offers a job waiting for its next offer waits for one task, not for the whole backlog.
REASSIGN_QUEUE = "reassign"

app.conf.update(
    # Ack after the task ran, not when it was received: a worker killed mid-dispatch
    # leaves the message on the broker to be redelivered, and every task is idempotent.
    task_acks_late=True,
    # ...and if the worker process dies under the task, requeue rather than ack it.
    task_reject_on_worker_lost=True,
    # Each worker process holds one unacknowledged message at a time, so a crash strands
    # at most one, and a slow task does not sit on a queue of others.
    worker_prefetch_multiplier=1,
    # Redis redelivers an unacked message after the visibility timeout. Our longest
    # countdown is an offer's expiry (tens of seconds), far below this; the sweeper,
    # not redelivery, is what rescues a lost expiry.
    broker_transport_options={"visibility_timeout": 3600},
    # Beat wakes when an entry is due, not 10 ms early to spin until it is (config/beat.py).
    beat_scheduler="config.beat:OnTimeScheduler",
    # Offers, housekeeping and outlet sends (webhooks, SMS) on separate queues: a backlog of one
    # cannot starve another, and a slow webhook receiver never delays an offer.
    # Each on its own exchange and key: a bare Queue(name) is bound to the default exchange
    # with the default queue's key, so both queues would receive (and run) every task.
    task_queues=[
        Queue(REASSIGN_QUEUE, Exchange(REASSIGN_QUEUE, type="direct"), routing_key=REASSIGN_QUEUE),
        Queue(OFFERS_QUEUE, Exchange(OFFERS_QUEUE, type="direct"), routing_key=OFFERS_QUEUE),
        Queue(HOUSEKEEPING_QUEUE, Exchange(HOUSEKEEPING_QUEUE, type="direct"), routing_key=HOUSEKEEPING_QUEUE),
        Queue(WEBHOOKS_QUEUE, Exchange(WEBHOOKS_QUEUE, type="direct"), routing_key=WEBHOOKS_QUEUE),
    ],
    task_default_queue=OFFERS_QUEUE,
    task_routes={
        "dispatch.offer": {"queue": OFFERS_QUEUE},
        "dispatch.next_offer": {"queue": REASSIGN_QUEUE},
        "dispatch.expire_due": {"queue": REASSIGN_QUEUE},
        "dispatch.expire_offer": {"queue": REASSIGN_QUEUE},
        "dispatch.sweep": {"queue": HOUSEKEEPING_QUEUE},
        "dispatch.remind": {"queue": HOUSEKEEPING_QUEUE},
        "events.prune": {"queue": HOUSEKEEPING_QUEUE},
        "ops.purge_tokens": {"queue": HOUSEKEEPING_QUEUE},
        "events.repush": {"queue": HOUSEKEEPING_QUEUE},
        "ops.heartbeat": {"queue": HOUSEKEEPING_QUEUE},
        "location.flush": {"queue": HOUSEKEEPING_QUEUE},
        "location.reconcile": {"queue": HOUSEKEEPING_QUEUE},
        "webhooks.deliver": {"queue": WEBHOOKS_QUEUE},
        "webhooks.notify": {"queue": WEBHOOKS_QUEUE},
        # Payouts call the payout rail (a network call): with the other outbound sends.
        "payouts.send": {"queue": WEBHOOKS_QUEUE},
        "payouts.run": {"queue": HOUSEKEEPING_QUEUE},
        # Gives numbers back to the telephony provider (network calls): with the other outbound sends.
        "telephony.close_ended": {"queue": WEBHOOKS_QUEUE},
        # A quick query that queues sends: with the other sweeps, not behind slow receivers.
        "webhooks.sweep": {"queue": HOUSEKEEPING_QUEUE},
    },
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)
# Every worker stamps the queues it consumes, so booking can tell a missing worker from a slow one.
app.steps["consumer"].add(QueuePresence)
app.autodiscover_tasks(["tasks"], related_name=None)


# Queues whose tasks rank providers: a worker consuming any of them reads its index before it consumes.
MATCHING_QUEUES = {OFFERS_QUEUE, REASSIGN_QUEUE, HOUSEKEEPING_QUEUE}


@celeryd_after_setup.connect
def _warm_matching(sender, instance, **_) -> None:
    """Read the matching snapshot before the first task: no offer waits for it (a webhooks worker skips it)."""
    from dispatch import regions
    from dispatch.index import warm_index

    consumed = instance.app.amqp.queues.consume_from  # None: every queue
    # Started for some regions (`-Q offers.north,reassign.north`): it holds only their providers.
    regions.serve(regions.queues_of(consumed) if consumed else None)
    bases = {name.partition(".")[0] for name in consumed or ()}
    if consumed and not MATCHING_QUEUES & bases:
        return

    try:
        warm_index()
    except Exception:  # the first task builds it instead; the worker must not die of a slow database
        logging.getLogger(__name__).exception("matching index not warmed at start-up")


@worker_ready.connect
def _freeze_start_up(**_) -> None:
    """Once the worker's tasks and their services are loaded: out of the collector's full passes."""
    from dispatch.gc_tuning import freeze_after_startup

    freeze_after_startup()
