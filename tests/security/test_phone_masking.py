"""With PHONE_MASKING on (the default) no party's real phone reaches the other party or a stranger.

A job lives its whole life through the API (booking, offer, accept, chat, location, masked and in-app
calls, start, complete, reviews) beside a second job that is cancelled, with distinctive phone numbers.
At three moments (assigned, in progress, ended) each viewer GETs every GET route of the access matrix
(tests/security/test_access_matrix.py: every route has a row there) for both jobs; the answers they got
to their own POSTs, their Event payloads, every webhook body and every socket frame are read too. The
other party's digits appear in none of it. With masking off the same walk finds them while the job is
live (the walk can see a phone), and nowhere once the jobs ended.
"""
import re
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from channels.db import database_sync_to_async
from rest_framework.test import APIClient

from dispatch.events import event_message
from dispatch.models import Event, WebhookDelivery, WebhookEndpoint
from dispatch.outlets import webhook_event_names
from dispatch.services.webhooks import delivery_body, endpoints_cache_clear
from tests.factories import CustomerFactory, make_provider
from tests.security.test_access_matrix import ROWS, _ids
from tests.sockets import received_events, token_of

CUSTOMER_PHONE = "+91 98765 43210"
PROVIDER_PHONE = "+44 7700 900123"
SEPARATORS = re.compile(r"[\s\-().]")
MOMENTS = ("assigned", "in_progress", "ended")


def digits_in(text: str, phone: str) -> bool:
    """Whether `phone`'s last ten digits appear in `text`, however spaced, dashed or bracketed."""
    return re.sub(r"\D", "", phone)[-10:] in SEPARATORS.sub("", text)


@dataclass
class Life:
    category: object
    customer: object
    provider: object
    strangers: list
    jobs: list = field(default_factory=list)
    bridges: list = field(default_factory=list)
    posted: dict = field(default_factory=dict)  # user id -> the bodies of the answers to their own calls
    # (user id, moment) -> {"gets": bodies of every GET route for both jobs, "posted": …, "events": payloads}
    seen: dict = field(default_factory=dict)

    @property
    def viewers(self) -> list:
        return [self.customer, self.provider, *self.strangers]

    def other_phones(self, viewer) -> list[str]:
        """The numbers `viewer` must never read: the other party's, or both for a stranger."""
        return {self.customer.pk: [PROVIDER_PHONE], self.provider.pk: [CUSTOMER_PHONE]}.get(
            viewer.pk, [CUSTOMER_PHONE, PROVIDER_PHONE])


def people(category) -> Life:
    return Life(
        category=category,
        customer=CustomerFactory(name="Meera Shah", phone=CUSTOMER_PHONE),
        provider=make_provider(categories=[category], user__name="Arun Das", user__phone=PROVIDER_PHONE),
        strangers=[CustomerFactory(name="Nosy Neighbour"), make_provider(categories=[category],
                                                                          user__name="Rival Provider")],
    )


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


def live_through_a_job(life: Life) -> Life:
    """Two jobs between the same customer and provider, one completed and one cancelled, and what each viewer read."""
    customer, provider = life.customer, life.provider
    life.posted = {customer.pk: [], provider.pk: []}

    def post(user, url, body=None) -> dict:
        response = _client(user).post(url, body or {}, format="json")
        life.posted[user.pk].append(response.content.decode())
        assert response.status_code in (200, 201), (url, response.status_code, response.content[:300])
        return response.json()

    post(customer, "/wallet/topup/", {"amount": "5000.00"})
    booking = {"category": life.category.pk, "provider": provider.pk, "address": "9 Masked Lane",
               "latitude": 28.62, "longitude": 77.22, "payment_method": "WALLET",
               "item_ids": list(life.category.items.values_list("pk", flat=True))}
    job = post(customer, "/services/jobs/", booking)["id"]
    life.jobs.append(job)
    life.posted[provider.pk].append(_client(provider).get("/services/offers/", {"status": "OFFERED"}).content.decode())
    post(provider, f"/services/jobs/{job}/accept/")
    _walk(life, "assigned")

    post(customer, f"/services/jobs/{job}/messages/", {"content": "The gate code is 4411"})
    post(provider, f"/services/jobs/{job}/messages/", {"content": "On my way"})
    post(provider, "/providers/me/location/", {"latitude": 28.621, "longitude": 77.221})
    for user in (customer, provider):
        life.bridges.append(post(user, f"/services/jobs/{job}/call_bridge/"))
        life.posted[user.pk].append(_client(user).get(f"/services/jobs/{job}/call/").content.decode())
    post(provider, f"/services/jobs/{job}/start_job/")
    _walk(life, "in_progress")

    post(provider, f"/services/jobs/{job}/complete_job/")
    post(customer, f"/services/jobs/{job}/review/", {"rating": 5, "comment": "Tidy work"})
    post(provider, f"/services/jobs/{job}/rate_customer/", {"rating": 5})
    second = post(customer, "/services/jobs/", {**booking, "address": "10 Masked Lane"})["id"]
    life.jobs.append(second)
    post(provider, f"/services/jobs/{second}/accept/")
    post(customer, f"/services/jobs/{second}/cancel/")
    _walk(life, "ended")
    return life


def _walk(life: Life, moment: str) -> None:
    """Each viewer GETs every GET route of the access matrix for both jobs; their answers so far and events too."""
    for viewer in life.viewers:
        client, gets = _client(viewer), []
        for row in (r for r in ROWS if r.method == "get"):
            for job_id in life.jobs:
                url = row.path.format(**_ids(row, SimpleNamespace(pk=job_id), life.provider, life.category))
                response = client.get(url, row.extra) if row.extra else client.get(url)
                assert response.status_code < 500 or row.name == "readyz", (url, response.status_code)
                gets.append(response.content.decode(errors="replace"))
        life.seen[(viewer.pk, moment)] = {
            "gets": gets,
            "posted": list(life.posted.get(viewer.pk, [])),
            "events": [str(event_message(e)) for e in Event.objects.filter(user=viewer)],
        }


def read(life: Life, viewer, moment: str, phone: str, kinds=("gets", "posted", "events")) -> list[str]:
    """What `viewer` read at `moment` that carries `phone`'s digits."""
    seen = life.seen[(viewer.pk, moment)]
    return [body[:200] for kind in kinds for body in seen[kind] if digits_in(body, phone)]


@pytest.fixture
def subscribed_receiver(db):
    """An ops webhook endpoint that wants every event (its deliveries stay rows: nothing commits here)."""
    WebhookEndpoint.objects.create(url="https://93.184.216.34/hook", events=webhook_event_names(), secret="s")
    endpoints_cache_clear()


@pytest.mark.django_db
@pytest.mark.usefixtures("telephony", "subscribed_receiver")
def test_masked_no_response_event_or_webhook_carries_the_other_partys_phone(category, settings):
    settings.LOCATION_MIN_INTERVAL_S = 0

    life = live_through_a_job(people(category))

    for viewer in life.viewers:
        for moment in MOMENTS:
            for phone in life.other_phones(viewer):
                assert read(life, viewer, moment, phone) == [], f"{viewer.username} read {phone} ({moment})"
    # the walk read the jobs themselves (not only refusals), and the parties got masked numbers
    customer_view = " ".join(life.seen[(life.customer.pk, "in_progress")]["gets"])
    assert "Arun Das" in customer_view and "On my way" in customer_view and '"masked":true' in customer_view
    assert len(life.bridges) == 2 and all(b["masked"] and b["number"].startswith("+1") for b in life.bridges)
    deliveries = [delivery_body(d).decode() for d in WebhookDelivery.objects.select_related("event")]
    assert len(deliveries) > 10
    assert [d for d in deliveries if digits_in(d, CUSTOMER_PHONE) or digits_in(d, PROVIDER_PHONE)] == []


@pytest.mark.django_db
@pytest.mark.usefixtures("telephony")
def test_unmasked_the_walk_finds_each_phone_while_live_and_nowhere_once_ended(category, settings):
    settings.LOCATION_MIN_INTERVAL_S = 0
    settings.PHONE_MASKING = False

    life = live_through_a_job(people(category))

    for moment in ("assigned", "in_progress"):
        assert read(life, life.customer, moment, PROVIDER_PHONE, kinds=["gets"])
        assert read(life, life.provider, moment, CUSTOMER_PHONE, kinds=["gets"])
    assert read(life, life.customer, "ended", PROVIDER_PHONE, kinds=["gets", "events"]) == []
    assert read(life, life.provider, "ended", CUSTOMER_PHONE, kinds=["gets", "events"]) == []
    for stranger in life.strangers:
        for moment in MOMENTS:
            assert read(life, stranger, moment, PROVIDER_PHONE) == read(life, stranger, moment, CUSTOMER_PHONE) == []


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("in_memory_layer", "telephony")
async def test_masked_no_socket_frame_carries_the_other_partys_phone(sockets, category, settings):
    settings.LOCATION_MIN_INTERVAL_S = 0
    life = await database_sync_to_async(people)(category)
    live = [await sockets(await token_of(user)) for user in life.viewers]

    await database_sync_to_async(live_through_a_job)(life)

    for user, socket in zip(life.viewers, live, strict=True):
        replayed = await sockets(await token_of(user), query="last_event_id=0")
        pushed, replay = await received_events(socket), await received_events(replayed)
        frames = [str(f) for f in pushed + replay]
        if user in (life.customer, life.provider):  # both heard the jobs live and on replay (else this proves nothing)
            assert len(pushed) >= 4 and len(replay) >= 4, (user.username, len(pushed), len(replay))
        for phone in life.other_phones(user):
            assert [f for f in frames if digits_in(f, phone)] == [], f"{user.username} heard {phone}"
