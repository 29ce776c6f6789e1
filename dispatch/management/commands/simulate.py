"""`manage.py simulate`: drive the real engine with virtual customers and providers, print KPIs."""
import logging
from dataclasses import replace

from django.core.management.base import BaseCommand, CommandError

from bench.report import machine, write_section
from bench.simulation import Plan, render, run


def _range_ms(text: str, flag: str) -> tuple[int, int]:
    try:
        low, high = (int(x) for x in text.split("-"))
    except ValueError as exc:
        raise CommandError(f"{flag} takes a range like 200-3000") from exc
    if not 0 <= low <= high:
        raise CommandError(f"{flag} takes a range like 200-3000")
    return low, high


class Command(BaseCommand):
    help = "Simulate bookings and provider answers against the real dispatch engine and report KPIs."

    def add_arguments(self, parser):
        parser.add_argument("--providers", type=int, default=2000)
        parser.add_argument("--bookings", type=int, default=500)
        parser.add_argument("--rate", type=float, default=50.0, help="bookings per second")
        parser.add_argument("--accept-prob", type=float, default=0.6)
        parser.add_argument("--ignore-prob", type=float, default=0.1)
        parser.add_argument("--think-ms", default="200-3000", help="provider think time range, e.g. 200-3000")
        parser.add_argument("--offer-timeout-s", type=int, default=5, help="instant and slot offers alike")
        parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (with Redis)")
        parser.add_argument("--pool", choices=["threads", "prefork"], default="threads", help="Celery pool")
        parser.add_argument("--concurrency", type=int, default=4, help="threads or processes per worker")
        parser.add_argument("--baseline-bookings", type=int, default=20, help="unloaded bookings first, the reference")
        parser.add_argument("--max-lag-s", type=float, default=2.0,
                            help="DISPATCH_MAX_LAG_S for the run: dispatch lag before booking answers 503 (0: off)")
        parser.add_argument("--scheduled-share", type=float, default=0.0,
                            help="share of bookings for a slot over the next days (the rest: now)")
        parser.add_argument("--direct-share", type=float, default=0.5,
                            help="share of slot bookings naming a provider (the rest: any provider nearby)")
        parser.add_argument("--release-share", type=float, default=0.05,
                            help="share of accepted jobs their provider hands back (job_release)")
        parser.add_argument("--days", type=int, default=3, help="slots are picked among today and the next days")
        parser.add_argument("--customer-think-ms", default="1000-8000",
                            help="from reading a slot's free starts to booking one, e.g. 1000-8000")
        parser.add_argument("--compare-instant-only", action="store_true",
                            help="then run the same with --scheduled-share 0 and report both side by side")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--write-docs", action="store_true", help="write the KPIs into docs/benchmarks.md")

    def handle(self, *args, **o):
        low, high = _range_ms(o["think_ms"], "--think-ms")
        customer_think = _range_ms(o["customer_think_ms"], "--customer-think-ms")
        shares = (o["accept_prob"], o["ignore_prob"], o["scheduled_share"], o["direct_share"], o["release_share"])
        if not all(0 <= x <= 1 for x in shares) or o["providers"] < 1 or o["bookings"] < 1 \
                or o["baseline_bookings"] < 1 or o["rate"] <= 0 or o["max_lag_s"] < 0 or o["days"] < 1:
            raise CommandError(
                "probabilities and shares must be in [0, 1]; providers, bookings and days at least 1; rate above 0;"
                " max-lag-s at least 0"
            )
        plan = Plan(
            providers=o["providers"], bookings=o["bookings"], rate=o["rate"], accept_prob=o["accept_prob"],
            ignore_prob=o["ignore_prob"], think_ms=(low, high), seed=o["seed"], workers=o["workers"],
            offer_timeout_s=o["offer_timeout_s"], pool=o["pool"], concurrency=o["concurrency"],
            baseline_bookings=o["baseline_bookings"], max_lag_s=o["max_lag_s"], scheduled_share=o["scheduled_share"],
            direct_share=o["direct_share"], release_share=o["release_share"], days=o["days"],
            customer_think_ms=customer_think,
        )
        # Late answers get 409s by design (the offer expired or went to someone else), and so
        # do slots taken between reading the free starts and booking one.
        logging.getLogger("django.request").setLevel(logging.ERROR)
        result = run(plan, log=lambda line: self.stdout.write(line))
        instant_only = None
        if o["compare_instant_only"] and plan.scheduled_share:
            self.stdout.write("now the same with --scheduled-share 0, the baseline")
            instant_only = run(replace(plan, scheduled_share=0.0), log=lambda line: self.stdout.write(line))
        command = (
            f"python manage.py simulate --providers {plan.providers} --bookings {plan.bookings} --rate {plan.rate:g} "
            f"--accept-prob {plan.accept_prob} --think-ms {low}-{high} --offer-timeout-s {plan.offer_timeout_s} --seed {plan.seed} "
            f"--workers {plan.workers} --pool {plan.pool} --concurrency {plan.concurrency} --max-lag-s {plan.max_lag_s:g}"
            f" --release-share {plan.release_share:g}"
            + (
                f" --scheduled-share {plan.scheduled_share:g} --direct-share {plan.direct_share:g} --days {plan.days}"
                f" --customer-think-ms {customer_think[0]}-{customer_think[1]}"
                if plan.scheduled_share else ""
            )
            + (" --compare-instant-only" if instant_only is not None else "")
            + (" --write-docs" if o["write_docs"] else "")
        )
        text = render(result, command, machine(), instant_only)
        self.stdout.write(text)
        if o["write_docs"]:
            # A run without shedding, or with slots, is its own section: the figures beside the others.
            write_section(
                f"simulation-{plan.rate:g}" + ("-unshed" if not plan.max_lag_s else "")
                + (f"-slots{round(plan.scheduled_share * 100)}" if plan.scheduled_share else ""),
                text,
            )
