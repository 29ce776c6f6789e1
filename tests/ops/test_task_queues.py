"""Task routing on a real Redis broker: each task lands on its own queue, exactly once.

A bare `Queue(name)` is bound to the default exchange with the default queue's routing
key: with two such queues, a message published to that exchange and key (as any client
routing by exchange would) reached both queues, and both workers ran it.
"""
import pytest
import redis
from django.conf import settings

from config.celery import HOUSEKEEPING_QUEUE, OFFERS_QUEUE, REASSIGN_QUEUE, WEBHOOKS_QUEUE
from config.celery import app as celery_app

pytestmark = pytest.mark.redis

# A database of its own on the test Redis: the lists below are counted, nothing else may use them.
ROUTING_DB = 13


@pytest.fixture
def broker_url(_tasks_run_in_process):
    # Published for real, not run in process: the point is where the message lands.
    celery_app.conf.task_always_eager = False
    url = f"{settings.REDIS_URL.rsplit('/', 1)[0]}/{ROUTING_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


@pytest.mark.parametrize("task, queue", [
    ("dispatch.offer", OFFERS_QUEUE),
    ("dispatch.next_offer", REASSIGN_QUEUE),
    ("dispatch.expire_due", REASSIGN_QUEUE),
    ("dispatch.expire_offer", REASSIGN_QUEUE),
    ("dispatch.sweep", HOUSEKEEPING_QUEUE),
    ("events.repush", HOUSEKEEPING_QUEUE),
    ("events.prune", HOUSEKEEPING_QUEUE),
    ("ops.heartbeat", HOUSEKEEPING_QUEUE),
    ("webhooks.deliver", WEBHOOKS_QUEUE),
    ("webhooks.notify", WEBHOOKS_QUEUE),
    ("webhooks.sweep", HOUSEKEEPING_QUEUE),
])
def test_a_task_is_queued_once_on_its_own_queue(broker_url, task, queue):
    with celery_app.connection_for_write(broker_url) as connection:
        # Declaring both queues first is what workers do; it is what bound them wrongly.
        for declared in celery_app.conf.task_queues:
            declared.bind(connection.default_channel).declare()
        celery_app.send_task(task, args=[1] if task.endswith("offer") else [], connection=connection)

    client = redis.Redis.from_url(broker_url)
    queues = (REASSIGN_QUEUE, OFFERS_QUEUE, HOUSEKEEPING_QUEUE, WEBHOOKS_QUEUE)
    assert {name: client.llen(name) for name in queues} == {name: int(queue == name) for name in queues}


def test_publishing_through_a_queues_exchange_and_key_reaches_that_queue_only(broker_url):
    client = redis.Redis.from_url(broker_url)
    with celery_app.connection_for_write(broker_url) as connection:
        for declared in celery_app.conf.task_queues:
            declared.bind(connection.default_channel).declare()
        for declared in celery_app.conf.task_queues:
            with connection.Producer() as producer:
                producer.publish({"probe": declared.name}, exchange=declared.exchange, routing_key=declared.routing_key)
            assert client.llen(declared.name) == 1
            others = [q.name for q in celery_app.conf.task_queues if q.name != declared.name]
            assert all(client.llen(name) == 0 for name in others), f"a message for {declared.name} reached {others}"
            client.delete(declared.name)
