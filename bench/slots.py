"""The simulator's provider time: working hours for the virtual providers, customers who pick a
slot from the free starts, and the KPIs of slots, holds and releases read back from the database.

Time is the real clock and the calendar rules are the real ones (the lead time, the slot
grid, the travel buffer, each provider's hours in their zone); only how long a slot offer
waits for an answer is shortened for the run, as the simulator already does for instant ones.
"""
import math
import random
from datetime import time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from dispatch.models import (
    AvailabilityWindow, Hold, Job, JobStatus, Offer, OfferStatus, ProviderProfile, TimeOff, TimeOffKind,
)
from dispatch.policy import policy_for
from dispatch.prepared import server_bound_cursor

TIME_ZONE = "Asia/Kolkata"
# Weekly shapes of the providers' hours, local time: (share of providers, ranges). The last
# one runs past midnight.
SHIFTS = (
    (0.35, ((time(8), time(16)),)),
    (0.35, ((time(12), time(20)),)),
    (0.20, ((time(9), time(13)), (time(14, 30), time(19)))),
    (0.10, ((time(18), time(2)),)),
)
# Of the providers, this share also takes one whole day off within the simulated days.
TIME_OFF_SHARE = 0.1
# Direct slot bookings: this share names one of the few most popular providers (the rest
# one of the providers nearest the customer), and this share of customers takes the first
# free start of the day they look at (the rest any of its free starts).
POPULAR_SHARE = 0.6
ASAP_SHARE = 0.4
NEAREST = 20
RELEASE_REASON = "Simulated: cannot make it after all"
LIVE = (JobStatus.ASSIGNED, JobStatus.IN_PROGRESS, JobStatus.COMPLETED)

KINDS = ("instant", "slot, chosen provider", "slot, any provider nearby")


def slot_policy(offer_timeout_s: int) -> dict:
    """The simulation category's one override: slot offers time out on the run's clock, as instant ones do."""
    return {"scheduled_offer_timeout_s": offer_timeout_s}


def give_working_hours(profiles: list[ProviderProfile], *, days: int, rng: random.Random) -> None:
    """Weekly hours (one weekday off, a shift from SHIFTS) and some dated days off, for saved profiles."""
    shares = [share for share, _ in SHIFTS]
    today = timezone.localtime(timezone.now(), ZoneInfo(TIME_ZONE)).date()
    windows, time_off = [], []
    for profile in profiles:
        _, ranges = rng.choices(SHIFTS, weights=shares)[0]
        day_off = rng.randrange(7)
        windows += [
            AvailabilityWindow(provider=profile, weekday=day, start=start, end=end)
            for day in range(7) if day != day_off
            for start, end in ranges
        ]
        if rng.random() < TIME_OFF_SHARE:
            day = today + timedelta(days=rng.randrange(days))
            time_off.append(TimeOff(provider=profile, date=day, kind=TimeOffKind.OFF))
    AvailabilityWindow.objects.bulk_create(windows, batch_size=5000)
    TimeOff.objects.bulk_create(time_off)


class SlotChooser:
    """A virtual customer's look at the free starts, through the API as the slot pages do: one
    provider's (`GET /auth/providers/{id}/slots/`) for a direct booking, or any nearby provider's
    (`GET /services/slots/`), on a day among the next `days`."""

    def __init__(self, *, world, days: int, rng: random.Random):
        self.world, self.days, self.rng = world, days, rng
        self.zone = ZoneInfo(TIME_ZONE)

    def nearest(self, lat: float, lng: float) -> list[int]:
        ids, lats, lngs = self.world.provider_points
        dy, dx = lats - lat, (lngs - lng) * np.cos(np.radians(lat))
        near = np.argpartition(dy * dy + dx * dx, min(NEAREST, len(ids) - 1))[:NEAREST]
        return [int(i) for i in ids[near]]

    def pick(self, client, *, lat: float, lng: float, direct: bool) -> tuple[int | None, str] | None:
        """(the chosen provider or None, a free start as the API wrote it), or None when nothing is free."""
        query = {"item_ids": str(self.world.item.pk)}
        if direct:
            pool = self.world.popular if self.rng.random() < POPULAR_SHARE else self.nearest(lat, lng)
            provider_id = self.rng.choice(pool)
            path = f"/auth/providers/{provider_id}/slots/"
        else:
            provider_id = None
            path = "/services/slots/"
            query |= {"category": self.world.category.pk, "lat": lat, "lng": lng}
        today = timezone.localtime(timezone.now(), self.zone).date()
        for offset in range(self.rng.randrange(self.days), self.days):  # the day they want, else a later one
            response = client.get(path, {**query, "date": (today + timedelta(days=offset)).isoformat()})
            starts = [slot["start"] for slot in response.json()["slots"]] if response.status_code == 200 else []
            if starts:
                return provider_id, starts[0] if self.rng.random() < ASAP_SHARE else self.rng.choice(starts)
        return None


def overlapping_holds(category_id: int) -> int:
    """Pairs of one provider's holds whose times overlap (half-open), over the category's jobs: must be 0."""
    hold, job = Hold._meta.db_table, Job._meta.db_table
    # Sampled twice a second while the load runs: planned once (server-bound), as the engine's own statements are.
    with server_bound_cursor(connection) as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {hold} a JOIN {hold} b ON a.provider_id = b.provider_id AND a.id < b.id"
            f" AND a.starts_at < b.ends_at AND b.starts_at < a.ends_at"
            f" WHERE a.job_id IN (SELECT id FROM {job} WHERE category_id = %s)",
            [category_id],
        )
        return cursor.fetchone()[0]


def hold_faults(jobs) -> dict:
    """ASSIGNED jobs without exactly one firm hold, of their provider; and holds left behind (of a
    job no longer live, or still tentative on a job already assigned). Both must be 0."""
    assigned = jobs.filter(status=JobStatus.ASSIGNED)
    firm: dict[int, list[int]] = {}
    for job_id, provider_id in Hold.objects.filter(job__in=assigned, firm=True).values_list("job_id", "provider_id"):
        firm.setdefault(job_id, []).append(provider_id)
    unheld = sum(1 for pk, provider_id in assigned.values_list("pk", "provider_id") if firm.get(pk) != [provider_id])
    left = list(
        Hold.objects.filter(job__in=jobs).exclude(job__status__in=(JobStatus.PENDING, *LIVE))
        | Hold.objects.filter(job__in=assigned, firm=False)
    )
    return {
        "assigned_without_firm_hold": unheld,
        "holds_left_behind": len(left),
        # Enough to find them in the logs: the hold, its job's status and offers.
        "left_behind": [
            f"{h} job status {h.job.status}, offers "
            + ", ".join(f"{o.provider_id}:{o.status}" for o in h.job.offers.order_by("rank"))
            for h in left[:5]
        ],
    }


def _ms(values) -> dict:
    if not values:
        return dict.fromkeys((50, 95, 99), float("nan"))
    arr = np.array([v.total_seconds() * 1000 for v in values])
    return {p: float(np.percentile(arr, p)) for p in (50, 95, 99)}


def slot_kpis(world, jobs, tally: dict, overlaps_seen: list[int]) -> dict:
    """What the run did with slots, holds and releases, read back from the database."""
    policy = policy_for(world.category)
    kinds = {
        "instant": jobs.filter(scheduled_at__isnull=True),
        "slot, chosen provider": jobs.filter(scheduled_at__isnull=False, requested_provider__isnull=False),
        "slot, any provider nearby": jobs.filter(scheduled_at__isnull=False, requested_provider__isnull=True),
    }
    by_kind = {}
    for kind, subset in kinds.items():
        statuses = dict(subset.values_list("status").annotate(n=Count("id")))
        taken = sum(statuses.values())
        filled = sum(statuses.get(s, 0) for s in LIVE)
        by_kind[kind] = {
            "asked": tally[f"asked {kind}"], "taken": taken, "filled": filled,
            "unfulfilled": statuses.get(JobStatus.UNFULFILLED, 0), "searching": statuses.get(JobStatus.PENDING, 0),
        }
    scheduled = jobs.filter(scheduled_at__isnull=False)
    # When each assigned slot was (last) accepted, against its start.
    ahead = [
        o.job.scheduled_at - o.responded_at
        for o in Offer.objects.filter(job__in=scheduled.filter(status__in=LIVE), status=OfferStatus.ACCEPTED)
        .select_related("job")
    ]
    released = list(
        Offer.objects.filter(job__in=jobs, status=OfferStatus.RELEASED).values("job_id", "provider_id", "responded_at")
    )
    taken_by = {}
    for o in Offer.objects.filter(job__in=jobs, status__in=(OfferStatus.ACCEPTED, OfferStatus.RELEASED)).values(
        "job_id", "provider_id", "responded_at"
    ):
        taken_by.setdefault(o["job_id"], []).append(o)
    redispatched, to_next = 0, []
    for r in released:
        later = sorted(
            (o for o in taken_by[r["job_id"]]
             if o["provider_id"] != r["provider_id"] and o["responded_at"] > r["responded_at"]),
            key=lambda o: o["responded_at"],
        )
        if later:
            redispatched += 1
            to_next.append(later[0]["responded_at"] - r["responded_at"])
    released_jobs = {r["job_id"] for r in released}
    released_status = dict(
        jobs.filter(pk__in=released_jobs).values_list("status").annotate(n=Count("id"))
    )
    return {
        "by_kind": by_kind,
        "lead_time_s": policy.lead_time_s,
        "slot_step_min": policy.slot_step_min,
        "buffer_min": policy.buffer_min,
        "scheduled_filled": len(ahead),
        "assigned_lead_ahead": sum(1 for a in ahead if a >= policy.lead_time),
        "least_ahead_min": min((a.total_seconds() / 60 for a in ahead), default=None),
        "releases": len(released),
        "releases_redispatched": redispatched,
        "released_jobs_status": released_status,
        "release_to_reassigned_ms": _ms(to_next),
        "overlaps_end": overlapping_holds(world.category.pk),
        "overlaps_max_seen": max(overlaps_seen, default=0),
        "overlap_samples": len(overlaps_seen),
        **hold_faults(jobs),
        "tally": tally,
    }


def _pct(part: int, whole: int) -> str:
    return f"{part / whole:.1%} ({part} / {whole})" if whole else "n/a (none)"


def _ms_pair(ms: dict) -> str:
    return "n/a (none)" if math.isnan(ms[50]) else f"{ms[50]:.0f} / {ms[95]:.0f} ms"


def _duration(minutes: float | None) -> str:
    if minutes is None:
        return "n/a"
    hours, rest = int(minutes // 60), int(minutes % 60)
    return f"{hours} h" + (f" {rest} min" if rest else "")


def describe(plan, world) -> list[str]:
    """How the virtual customers book slots, how providers keep hours and how time is kept, for the report."""
    shifts = "; ".join(
        f"{share:.0%} " + " + ".join(f"{a:%H:%M}–{b:%H:%M}" for a, b in ranges) for share, ranges in SHIFTS
    )
    policy = policy_for(world.category)
    hours = [
        f"Providers keep hours in {TIME_ZONE}, six days a week (one weekday off): {shifts};",
        f"{TIME_OFF_SHARE:.0%} also take one of the next {plan.days} days off. Of the accepted jobs, {plan.release_share:.0%} are handed back",
        "by their provider after the think time (`POST /services/jobs/{id}/release/`, with a reason).",
    ]
    if not plan.scheduled_share:
        return ["All bookings are for now (`--scheduled-share 0`).", *hours]
    think = f"{plan.customer_think_ms[0]}–{plan.customer_think_ms[1]} ms"
    return [
        f"{plan.scheduled_share:.0%} of the bookings ask for a slot (`scheduled_at`), the rest for now. Of the slot bookings,",
        f"{plan.direct_share:.0%} name a provider ({POPULAR_SHARE:.0%} one of the {len(world.popular)} best-rated, the rest one of the",
        f"{NEAREST} nearest) at one of that provider's free starts (`GET /auth/providers/{{id}}/slots/`); the others ask",
        "for any provider nearby at a start someone nearby is free (`GET /services/slots/`). A customer looks at a day",
        f"among the next {plan.days} (today first; if nothing is free, the days after it), takes its first free start",
        f"({ASAP_SHARE:.0%} of customers) or any of them, and books {think} after reading them. A direct booking",
        "refused with 409 (the slot went meanwhile) is retried once at the first of the next free starts the answer names.",
        *hours,
        "",
        "Time is the real clock and the rules are the real ones: slots on the "
        f"{policy.slot_step_min}-min grid of each provider's hours, at least the lead time "
        f"({_duration(policy.lead_time_s / 60)}) ahead, {world.item.duration_min}-min jobs held with a "
        f"{policy.buffer_min}-min travel buffer before them; a slot search that finds nobody free looks again every",
        f"{policy.scheduled_retry_s} s. Only the answer clock is short, as for instant offers: a slot offer times out after",
        f"{policy.scheduled_offer_timeout_s} s (DISPATCH_SCHEDULED_OFFER_TIMEOUT_S is {settings.DISPATCH_SCHEDULED_OFFER_TIMEOUT_S} s). So slots are searched for",
        "within the run, hours before they start: the lead-time row counts the slots booked close to the lead time,",
        "and a slot job still searching at the end has hours left.",
    ]


def render_slots(result: dict, world_text: list[str], instant_only: dict | None = None) -> list[str]:
    s = result["slots"]
    t = s["tally"]
    lines = [
        "", "### Slots, holds and releases", "", *world_text, "",
        "| bookings | asked | taken | refused | ASSIGNED | UNFULFILLED | still searching | filled |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind, k in s["by_kind"].items():
        filled = f"{k['filled'] / k['taken']:.1%}" if k["taken"] else "n/a"
        lines.append(
            f"| {kind} | {k['asked']} | {k['taken']} | {t[f'refused {kind}']} | {k['filled']} | {k['unfulfilled']} | {k['searching']} | "
            f"{filled} |"
        )
    slots_taken = sum(k["taken"] for kind, k in s["by_kind"].items() if kind != "instant")
    slots_filled = sum(k["filled"] for kind, k in s["by_kind"].items() if kind != "instant")
    direct_asked = s["by_kind"]["slot, chosen provider"]["asked"]
    released = ", ".join(f"{status} {n}" for status, n in sorted(s["released_jobs_status"].items())) or "none"
    lines += [
        "",
        "Refused: the first answer was not 201 (for instant bookings mostly 503, dispatch behind; for direct slot",
        "bookings 409, that provider's time was taken between reading the free starts and booking). Asked",
        "includes customers who found no free start and booked nothing.",
        "",
        "| KPI | value |",
        "| --- | ---: |",
        f"| overlapping holds of one provider, SQL over dispatch_hold: at the end | {s['overlaps_end']} |",
        f"| overlapping holds, most seen in any sample during the run ({s['overlap_samples']} samples) | {s['overlaps_max_seen']} |",
        f"| ASSIGNED jobs without exactly one firm hold / holds left behind | {s['assigned_without_firm_hold']} / {s['holds_left_behind']} |",
        f"| slot fill rate (ASSIGNED / slot jobs booked) | {_pct(slots_filled, slots_taken)} |",
        f"| slots assigned at least the lead time ({_duration(s['lead_time_s'] / 60)}) before their start | "
        f"{_pct(s['assigned_lead_ahead'], s['scheduled_filled'])} |",
        f"| least time between a slot's assignment and its start | {_duration(s['least_ahead_min'])} |",
        f"| direct slot bookings refused with 409 (slot taken) | {t['taken 409']} of {direct_asked} |",
        f"| of those, rebooked at the first next free start the 409 named / refused again | {t['rebooked']} / {t['rebook refused']} |",
        f"| slot customers who found no free start in the days shown | {t['no free start']} |",
        f"| releases (provider hands an accepted job back) | {s['releases']} |",
        f"| releases re-dispatched (ASSIGNED to another provider afterwards) | {_pct(s['releases_redispatched'], s['releases'])} |",
        f"| release → another provider assigned p50 / p95 | {_ms_pair(s['release_to_reassigned_ms'])} |",
        f"| released jobs at the end | {released} |",
    ]
    if instant_only is not None:
        lines += _render_comparison(result, instant_only)
    return lines


def _render_comparison(mixed: dict, alone: dict) -> list[str]:
    """Instant dispatch with slots mixed in, against the same command with --scheduled-share 0."""

    def row(name: str, key: str, pct: int | None = None, unit: str = "ms") -> str:
        a, b = (mixed[key], alone[key]) if pct is None else (mixed[key][pct], alone[key][pct])
        ratio = f"{a / b:.2f}x" if b else "n/a"
        formats = {"%": "{:.1%}", "": "{:.2f}", "ms": "{:.0f} ms"}
        fmt = formats[unit].format
        return f"| {name} | {fmt(a)} | {fmt(b)} | {ratio} |"

    sm, sa = mixed["slots"], alone["slots"]

    def cpu_ms(result: dict) -> float:
        split = result.get("cpu_split")
        return sum(split["used_s"].values()) * 1000 / result["bookings"] if split and result["bookings"] else float("nan")

    cpu = (cpu_ms(mixed), cpu_ms(alone))
    return [
        "",
        "Baseline: the same command with `--scheduled-share 0` (instant bookings only), run right after in the same",
        "process on a freshly built, identical world.",
        "",
        "| KPI, instant bookings | with slots mixed in | instant only | ratio |",
        "| --- | ---: | ---: | ---: |",
        row("fulfilment (ASSIGNED)", "fulfilment", unit="%"),
        row("booking → first offer p50", "first_offer_ms", 50),
        row("booking → first offer p99", "first_offer_ms", 99),
        row("time to assign p50", "time_to_assign_ms", 50),
        row("time to assign p99", "time_to_assign_ms", 99),
        row("offers per job", "offers_per_job", unit=""),
        f"| overlapping holds at the end / most seen | {sm['overlaps_end']} / {sm['overlaps_max_seen']} | "
        f"{sa['overlaps_end']} / {sa['overlaps_max_seen']} | |",
        f"| releases re-dispatched | {_pct(sm['releases_redispatched'], sm['releases'])} | "
        f"{_pct(sa['releases_redispatched'], sa['releases'])} | |",
        f"| CPU per booking, all of this run's processes (any kind of booking) | {cpu[0]:.1f} ms | {cpu[1]:.1f} ms | "
        f"{cpu[0] / cpu[1]:.2f}x |",
    ]
