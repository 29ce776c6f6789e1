"""The demo city: deterministic, idempotent, resettable, and its logins work."""
import io
from datetime import time
from decimal import Decimal

import pytest
from django.core.management import call_command

from dispatch.models import (
    AvailabilityWindow,
    Invoice,
    Job,
    PaymentMethod,
    ProviderProfile,
    Role,
    ServiceCategory,
    ServiceItem,
    User,
    Wallet,
    WalletKind,
)
from dispatch.services.lifecycle import job_complete, job_start
from dispatch.services.offers import offer_accept
from dispatch.services.wallet import ledger_audit, system_wallet, wallet_of, wallet_topup
from matching.geo import haversine_km
from tests.conftest import book
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

DELHI = (28.6139, 77.2090)


def _seed(*args) -> str:
    out = io.StringIO()
    call_command("seed_demo", "--providers", "40", *args, stdout=out)
    return out.getvalue()


def _coordinates():
    return list(ProviderProfile.objects.order_by("user__username").values_list("base_latitude", "base_longitude"))


def _counts():
    return {
        model.__name__: model.objects.count()
        for model in (User, ProviderProfile, ServiceCategory, ServiceItem, AvailabilityWindow, Job)
    } | {
        "category links": ProviderProfile.categories.through.objects.count(),
        "item links": ProviderProfile.items.through.objects.count(),
    }


def test_seed_builds_a_city_of_providers_serving_real_categories():
    output = _seed()

    assert ServiceCategory.objects.count() == 6
    assert all(c.items.exists() for c in ServiceCategory.objects.all())
    assert all(i.price > 0 and i.price == i.price.quantize(Decimal("0.01")) for i in ServiceItem.objects.all())
    profiles = ProviderProfile.objects.select_related("user").prefetch_related("categories", "items", "availability")
    assert profiles.count() == 40
    for profile in profiles:
        served = set(profile.categories.all())
        assert profile.user.role == Role.PROVIDER and profile.user.phone
        assert served and {i.category for i in profile.items.all()} == served
        assert haversine_km(*DELHI, profile.base_latitude, profile.base_longitude) < 25
        assert haversine_km(*DELHI, profile.last_latitude, profile.last_longitude) < 25
        assert 5 <= profile.service_radius_km <= 15 and 0.5 <= profile.acceptance_rate <= 1.0
        assert profile.availability.count() >= 6
    online = profiles.filter(is_online=True).count()
    assert 0 < online < 40
    assert profiles.filter(rating_count=0).exists() and profiles.filter(rating_count__gt=0).exists()
    assert "customer1" in output and "provider40" in output and "demo-pass-123" in output


def test_customers_and_an_ops_login_who_can_open_the_admin():
    _seed()

    assert sorted(User.objects.filter(role=Role.CUSTOMER).values_list("username", flat=True)) == [
        "customer1", "customer2", "customer3",
    ]
    assert User.objects.get(username="ops", role=Role.OPS).is_staff


def test_working_hours_are_delhi_local_hours_and_items_have_durations():
    _seed()

    assert set(ProviderProfile.objects.values_list("time_zone", flat=True)) == {"Asia/Kolkata"}
    for window in AvailabilityWindow.objects.all():
        assert time(7) <= window.start <= time(10) and time(15) <= window.end <= time(22)
    assert ServiceItem.objects.get(name="Full home cleaning").duration_min == 300


def test_seed_twice_creates_no_duplicates():
    _seed()
    first = _counts()

    output = _seed()

    assert _counts() == first
    assert "already seeded" in output and "customer1" in output and "demo-pass-123" in output


def test_same_seed_gives_the_same_city():
    _seed()
    first = _coordinates()

    _seed("--reset")

    assert _coordinates() == first
    _seed("--reset", "--seed", "7")
    assert _coordinates() != first


def test_reset_removes_jobs_that_involve_demo_users():
    _seed()
    provider = User.objects.get(username="provider1")
    category = provider.provider_profile.categories.first()
    book(CustomerFactory(), category, provider)
    before = _counts()

    _seed("--reset")

    assert Job.objects.count() == 0
    assert _counts() == before | {"Job": 0}


def test_every_demo_customer_and_provider_has_a_wallet_from_the_start():
    _seed()

    people = User.objects.filter(role__in=[Role.CUSTOMER, Role.PROVIDER])
    assert people.count() > 40
    assert Wallet.objects.filter(user__in=people).count() == people.count()
    assert not Wallet.objects.filter(user__role=Role.OPS).exists()


def test_reset_after_paid_jobs_removes_their_money_and_keeps_the_ledger_whole():
    _seed()
    customer, provider = User.objects.get(username="customer1"), User.objects.get(username="provider1")
    outsider = CustomerFactory()  # not demo data: their money with a demo provider goes, their wallet stays
    category = provider.provider_profile.categories.first()
    for payer, method in ((customer, PaymentMethod.WALLET), (outsider, PaymentMethod.WALLET), (customer, PaymentMethod.CASH)):
        wallet_topup(user=payer, amount=Decimal("20000.00"), payment_token="tok_test")
        job = book(payer, category, provider, payment_method=method)
        offer_accept(job_id=job.pk, provider=provider)
        job_start(job_id=job.pk, provider=provider)
        job_complete(job_id=job.pk, provider=provider)
    assert Invoice.objects.count() == 3 and system_wallet(WalletKind.PLATFORM).balance > 0

    _seed("--reset")

    assert Job.objects.count() == 0 and Invoice.objects.count() == 0
    assert ledger_audit() == []
    # The outsider keeps only their top-up: the payment to the demo provider went with the provider.
    assert wallet_of(outsider).balance == Decimal("20000.00")
    assert system_wallet(WalletKind.PLATFORM).balance == 0
    assert User.objects.get(username="provider1").wallet.balance == 0


def test_seed_reuses_a_category_that_already_exists():
    ServiceCategory.objects.create(name="Plumbing", slug="plumbing")

    _seed()

    assert ServiceCategory.objects.count() == 6
    assert ServiceItem.objects.filter(category__slug="plumbing").count() == 4


def test_demo_login_works(client_for):
    _seed()

    response = client_for().post("/auth/login/", {"username": "customer1", "password": "demo-pass-123"}, format="json")

    assert response.status_code == 200 and response.json()["token"]


def test_seed_prints_the_address_the_server_will_answer_on(settings, monkeypatch):
    settings.PORT = 9123  # `make run PORT=9123` / `make up` export PORT (and HOST) to seed_demo
    monkeypatch.setenv("HOST", "localhost")

    output = _seed()

    assert "Sign in at http://localhost:9123/signin/" in output
    assert "API docs: http://localhost:9123/api/docs/" in output
    assert ":8000" not in output
