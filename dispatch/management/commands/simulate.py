"""`manage.py simulate`: drive the real engine with virtual customers and providers, print KPIs."""
import logging

from django.core.management.base import BaseCommand, CommandError

from bench.report import machine, write_section
from bench.simulation import Plan, render, run


class Command(BaseCommand):
    help = "Simulate bookings and provider answers against the real dispatch engine and report KPIs."

    def add_arguments(self, parser):
        parser.add_argument("--providers", type=int, default=2000)
        parser.add_argument("--bookings", type=int, default=500)
        parser.add_argument("--rate", type=float, default=50.0, help="bookings per second")
        parser.add_argument("--accept-prob", type=float, default=0.6)
        parser.add_argument("--ignore-prob", type=float, default=0.1)
        parser.add_argument("--think-ms", default="200-3000", help="provider think time range, e.g. 200-3000")
        parser.add_argument("--offer-timeout-s", type=int, default=5)
        parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (with Redis)")
        parser.add_argument("--pool", choices=["threads", "prefork"], default="threads", help="Celery pool")
        parser.add_argument("--concurrency", type=int, default=4, help="threads or processes per worker")
        parser.add_argument("--baseline-bookings", type=int, default=20, help="unloaded bookings first, the reference")
        parser.add_argument("--max-lag-s", type=float, default=2.0,
                            help="DISPATCH_MAX_LAG_S for the run: dispatch lag before booking answers 503 (0: off)")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--write-docs", action="store_true", help="write the KPIs into docs/benchmarks.md")

    def handle(self, *args, **o):
        try:
            low, high = (int(x) for x in o["think_ms"].split("-"))
        except ValueError as exc:
            raise CommandError("--think-ms takes a range like 200-3000") from exc
        if not (0 <= o["accept_prob"] <= 1 and 0 <= o["ignore_prob"] <= 1) or o["providers"] < 1 or o["bookings"] < 1 \
                or o["baseline_bookings"] < 1 or o["rate"] <= 0 or o["max_lag_s"] < 0:
            raise CommandError(
                "probabilities must be in [0, 1]; providers and bookings at least 1; rate above 0; max-lag-s at least 0"
            )
        plan = Plan(
            providers=o["providers"], bookings=o["bookings"], rate=o["rate"], accept_prob=o["accept_prob"],
            ignore_prob=o["ignore_prob"], think_ms=(low, high), seed=o["seed"], workers=o["workers"],
            offer_timeout_s=o["offer_timeout_s"], pool=o["pool"], concurrency=o["concurrency"],
            baseline_bookings=o["baseline_bookings"], max_lag_s=o["max_lag_s"],
        )
        # Late answers get 409s by design (the offer expired or went to someone else).
        logging.getLogger("django.request").setLevel(logging.ERROR)
        result = run(plan, log=lambda line: self.stdout.write(line))
        command = (
            f"python manage.py simulate --providers {plan.providers} --bookings {plan.bookings} --rate {plan.rate:g} "
            f"--accept-prob {plan.accept_prob} --think-ms {low}-{high} --seed {plan.seed} "
            f"--workers {plan.workers} --pool {plan.pool} --concurrency {plan.concurrency} --max-lag-s {plan.max_lag_s:g}"
            + (" --write-docs" if o["write_docs"] else "")
        )
        text = render(result, command, machine())
        self.stdout.write(text)
        if o["write_docs"]:
            # A run without shedding is its own section: the figure beside the one with it.
            write_section(f"simulation-{plan.rate:g}" + ("-unshed" if not plan.max_lag_s else ""), text)
