"""`manage.py seed_demo`: a deterministic demo city (New Delhi) with categories, providers and logins.

Seed data is not a business action, so it is written with bulk inserts rather than services.
"""
import math
import os
import random
from datetime import time
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import F, Q, Sum
from django.utils import timezone
from django.utils.text import slugify

from dispatch.models import (
    AvailabilityWindow,
    Invoice,
    Job,
    LedgerEntry,
    ProviderProfile,
    Role,
    ServiceCategory,
    ServiceItem,
    Transfer,
    User,
    Wallet,
)
from dispatch.services.wallet import wallets_open

CITY = ("New Delhi", 28.6139, 77.2090)
CITY_TZ = ZoneInfo("Asia/Kolkata")
PASSWORD = "demo-pass-123"
CUSTOMERS = 3
DEMO_USERNAMES = r"^(customer[0-9]+|provider[0-9]+|ops)$"
KM_PER_DEGREE = 111.32
CENT = Decimal("0.01")

# name, price, minutes
CATALOG = {
    "Plumbing": [
        ("Tap leakage fix", 350, 30), ("Pipe replacement", 1200, 120), ("Toilet repair", 650, 60),
        ("Water tank cleaning", 900, 90),
    ],
    "Electrical": [
        ("Fan installation", 300, 45), ("Switchboard repair", 250, 30), ("Wiring check", 800, 60),
        ("Inverter setup", 1100, 90),
    ],
    "Cleaning": [("Bathroom deep clean", 1200, 120), ("Kitchen deep clean", 1500, 150), ("Full home cleaning", 4500, 300)],
    "Beauty & Salon": [
        ("Haircut at home", 400, 45), ("Facial", 1300, 60), ("Manicure & pedicure", 900, 90),
        ("Bridal makeup", 8000, 180),
    ],
    "Carpentry": [("Door repair", 500, 60), ("Furniture assembly", 800, 120), ("Cupboard hinge fix", 250, 30)],
    "AC Repair": [
        ("AC service", 600, 60), ("Gas refill", 2500, 60), ("AC installation", 1500, 150), ("AC uninstallation", 700, 60),
        ("PCB repair", 3000, 90),
    ],
}
TRADE = {
    "Plumbing": "Plumber",
    "Electrical": "Electrician",
    "Cleaning": "Cleaner",
    "Beauty & Salon": "Beautician",
    "Carpentry": "Carpenter",
    "AC Repair": "AC Technician",
}
FIRST_NAMES = ["Raj", "Amit", "Sunil", "Priya", "Neha", "Vikram", "Anita", "Rohit", "Pooja", "Arjun", "Kavita", "Manoj"]
LAST_NAMES = ["Kumar", "Sharma", "Verma", "Singh", "Gupta", "Yadav", "Mehta", "Khan", "Joshi", "Chauhan"]


class Command(BaseCommand):
    help = "Seed a demo city: categories with items, providers around New Delhi, customers and an ops login."

    def add_arguments(self, parser):
        parser.add_argument("--providers", type=int, default=300)
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--reset", action="store_true", help="Delete the demo data first, then seed again.")

    def handle(self, *, providers, seed, reset, **options):
        if providers < 0:
            raise CommandError("--providers must be 0 or more.")
        with transaction.atomic():
            if reset:
                _delete_demo()
            already_seeded = User.objects.filter(username="customer1").exists()
            if not already_seeded:
                _seed(random.Random(seed), providers)
        if already_seeded:
            self.stdout.write("Demo data already seeded (use --reset to seed it again).")
        else:
            self.stdout.write(f"Seeded {CITY[0]}: {len(CATALOG)} categories, {providers} providers.")
        self._print_logins()

    def _print_logins(self):
        last = User.objects.filter(username__startswith="provider", role=Role.PROVIDER).count()
        # The address the server about to start will answer on: `make run` and `make up` export
        # HOST and PORT (PORT=9000 included); without them, uvicorn's and the Makefile's defaults.
        base = f"http://{os.environ.get('HOST', '127.0.0.1')}:{settings.PORT}"
        self.stdout.write(
            f"\nDemo logins (password for all: {PASSWORD})\n"
            f"  customers: customer1 … customer{CUSTOMERS}\n"
            f"  providers: provider1 … provider{last}\n"
            "  ops:       ops   (also /admin/)\n"
            f"Sign in at {base}/signin/  ·  API docs: {base}/api/docs/\n"
        )


def _delete_demo() -> None:
    """The demo users and categories, and every job, wallet and money movement that would otherwise protect them
    from deletion.

    Other wallets (the platform's, the gateway's, anyone who dealt with a demo user) lose their side of the
    deleted movements, so each still holds what its remaining ledger entries sum to (`ledger_audit` stays clean).
    """
    demo_users = User.objects.filter(username__regex=DEMO_USERNAMES)
    demo_categories = ServiceCategory.objects.filter(name__in=CATALOG)
    jobs = Job.objects.filter(
        Q(category__in=demo_categories)
        | Q(customer__in=demo_users)
        | Q(provider__in=demo_users)
        | Q(requested_provider__in=demo_users)
        | Q(offers__provider__in=demo_users)
    )
    wallets = Wallet.objects.filter(user__in=demo_users)
    transfers = list(Transfer.objects.filter(Q(job__in=jobs) | Q(entries__wallet__in=wallets))
                     .values_list("pk", flat=True).distinct())
    entries = LedgerEntry.objects.filter(transfer__in=transfers)
    for wallet_id, amount in entries.exclude(wallet__in=wallets).values_list("wallet_id").annotate(Sum("amount")):
        Wallet.objects.filter(pk=wallet_id).update(balance=F("balance") - amount)
    entries.delete()
    Transfer.objects.filter(pk__in=transfers).delete()
    Invoice.objects.filter(job__in=jobs).delete()
    jobs.delete()
    wallets.delete()
    demo_users.delete()
    demo_categories.delete()


def _seed(rng: random.Random, provider_count: int) -> None:
    password = make_password(PASSWORD)  # once: hashing per user would take minutes
    categories = _seed_catalog()
    User.objects.bulk_create(
        [User(username=f"customer{i}", name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
              phone=f"+91 98{i:03d} {rng.randrange(10**5):05d}", role=Role.CUSTOMER, password=password)
         for i in range(1, CUSTOMERS + 1)]
        # Superuser too: a staff account without model permissions sees an empty /admin/.
        + [User(username="ops", name="Ops Desk", role=Role.OPS, is_staff=True, is_superuser=True, password=password)]
    )
    _seed_providers(rng, provider_count, categories, password)
    wallets_open(User.objects.filter(username__regex=DEMO_USERNAMES))


def _seed_catalog() -> list[ServiceCategory]:
    """The demo categories and items, reusing any that already exist under the same name."""
    categories = []
    for name, items in CATALOG.items():
        category, _ = ServiceCategory.objects.get_or_create(name=name, defaults={"slug": slugify(name)})
        ServiceItem.objects.bulk_create(
            [
                ServiceItem(category=category, name=item, price=Decimal(price).quantize(CENT), duration_min=minutes)
                for item, price, minutes in items
            ],
            ignore_conflicts=True,
        )
        categories.append(category)
    return categories


def _around_city(rng: random.Random) -> tuple[float, float]:
    """A point ~6 km (gaussian) from the centre, at most 20 km out."""
    _, lat0, lng0 = CITY
    distance_km = min(abs(rng.gauss(0, 6)), 20)
    bearing = rng.uniform(0, 2 * math.pi)
    lat = lat0 + distance_km * math.cos(bearing) / KM_PER_DEGREE
    lng = lng0 + distance_km * math.sin(bearing) / (KM_PER_DEGREE * math.cos(math.radians(lat0)))
    return round(lat, 6), round(lng, 6)


def _working_day(profile: ProviderProfile, weekday: int, start_hour: int, end_hour: int) -> AvailabilityWindow:
    """A working day in the city's local time (the providers' zone), ending by midnight."""
    return AvailabilityWindow(provider=profile, weekday=weekday, start=time(start_hour), end=time(end_hour % 24))


def _seed_providers(rng: random.Random, count: int, categories: list[ServiceCategory], password: str) -> None:
    now = timezone.now()
    served = [rng.sample(categories, k=rng.choice((1, 1, 2))) for _ in range(count)]
    users = User.objects.bulk_create(
        User(
            username=f"provider{i}",
            name=f"{TRADE[cats[0].name]} {i}",
            phone=f"+91 90{i:04d} {rng.randrange(10**4):04d}",
            role=Role.PROVIDER,
            password=password,
        )
        for i, cats in enumerate(served, start=1)
    )
    profiles = []
    for user in users:
        base = _around_city(rng)
        rating_count = rng.choice((0, 0, rng.randint(1, 10), rng.randint(10, 200)))
        profiles.append(
            ProviderProfile(
                user=user,
                base_latitude=base[0],
                base_longitude=base[1],
                last_latitude=round(base[0] + rng.uniform(-0.01, 0.01), 6),
                last_longitude=round(base[1] + rng.uniform(-0.01, 0.01), 6),
                last_location_at=now,
                is_online=rng.random() < 0.8,
                time_zone=CITY_TZ.key,
                service_radius_km=rng.choice((5, 8, 10, 12, 15)),
                rating_count=rating_count,
                rating_avg=round(rng.uniform(3.2, 5.0), 2) if rating_count else 0.0,
                acceptance_rate=round(rng.uniform(0.5, 1.0), 2),
                bio=f"{rng.randint(1, 15)} years of experience.",
                portfolio=[
                    {"title": f"Job {n}", "url": f"https://example.com/portfolio/{user.username}/{n}.jpg",
                     "description": "Before and after."}
                    for n in range(1, rng.randint(1, 3) + 1)
                ],
            )
        )
    profiles = ProviderProfile.objects.bulk_create(profiles)
    category_links, item_links, windows = [], [], []
    Categories = ProviderProfile.categories.through
    Items = ProviderProfile.items.through
    items_of = {c.pk: list(c.items.all()) for c in categories}
    for profile, cats in zip(profiles, served, strict=True):
        for category in cats:
            category_links.append(Categories(providerprofile_id=profile.pk, servicecategory_id=category.pk))
            item_links.extend(Items(providerprofile_id=profile.pk, serviceitem_id=i.pk) for i in items_of[category.pk])
        start_hour = rng.choice((7, 8, 9, 10))
        end_hour = start_hour + rng.choice((8, 9, 10, 12))
        days = range(7) if rng.random() < 0.3 else range(6)
        windows.extend(_working_day(profile, d, start_hour, end_hour) for d in days)
    Categories.objects.bulk_create(category_links)
    Items.objects.bulk_create(item_links)
    AvailabilityWindow.objects.bulk_create(windows)
