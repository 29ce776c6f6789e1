"""The dispatch rules for a category: settings' defaults, overridden per category in one place.

Booking, dispatch, matching and the calendar all ask `policy_for(category)`; nothing else
reads the DISPATCH_* settings. A category overrides a rule by naming it in its
`dispatch_policy` JSON (`{"capacity": 2, "weights": {"distance": 0.6}}`); the older
`offer_timeout_s` and `batch_size` columns still win for those two.
"""
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings

from dispatch.errors import Invalid
from matching.types import ScoreWeights


@dataclass(frozen=True)
class DispatchPolicy:
    offer_timeout_s: int
    scheduled_offer_timeout_s: int
    batch_size: int
    radius_steps_km: tuple[float, ...]
    max_offers: int
    search_deadline_s: int
    lead_time_s: int
    buffer_min: int
    capacity: int
    reminder_before_s: int
    no_show_grace_s: int
    retry_s: int
    scheduled_retry_s: int
    slot_step_min: int
    # Unpaid commission (cash jobs) at which a provider gets no new offers in this category; 0: no limit.
    dues_limit: int
    # A customer cancelling an ASSIGNED job pays `cancellation_fee` unless they cancel a slot at least
    # `cancel_free_before_s` before its start, or an instant job within `cancel_free_after_assign_s` of its assignment.
    cancellation_fee: Decimal
    cancel_free_before_s: int
    cancel_free_after_assign_s: int
    weights: ScoreWeights

    @property
    def buffer(self) -> timedelta:
        return timedelta(minutes=self.buffer_min)

    @property
    def lead_time(self) -> timedelta:
        return timedelta(seconds=self.lead_time_s)

    @property
    def slot_step(self) -> timedelta:
        return timedelta(minutes=self.slot_step_min)

    @property
    def max_dues(self) -> float | None:
        """What matching leaves out providers at (`dues_limit`), None for no limit."""
        return float(self.dues_limit) if self.dues_limit else None

    def timeout_s(self, *, scheduled: bool) -> int:
        return self.scheduled_offer_timeout_s if scheduled else self.offer_timeout_s


_POSITIVE_INTS = {
    "offer_timeout_s", "scheduled_offer_timeout_s", "batch_size", "max_offers", "search_deadline_s", "capacity",
    "retry_s", "scheduled_retry_s", "slot_step_min",
}
_NON_NEGATIVE_INTS = {"lead_time_s", "buffer_min", "reminder_before_s", "no_show_grace_s", "dues_limit",
                      "cancel_free_before_s", "cancel_free_after_assign_s"}


def default_policy() -> DispatchPolicy:
    return DispatchPolicy(
        offer_timeout_s=settings.DISPATCH_OFFER_TIMEOUT_S,
        scheduled_offer_timeout_s=settings.DISPATCH_SCHEDULED_OFFER_TIMEOUT_S,
        batch_size=settings.DISPATCH_BATCH_SIZE,
        radius_steps_km=tuple(settings.DISPATCH_RADIUS_STEPS_KM),
        max_offers=settings.DISPATCH_MAX_OFFERS_PER_JOB,
        search_deadline_s=settings.DISPATCH_SEARCH_DEADLINE_S,
        lead_time_s=settings.DISPATCH_SCHEDULED_LEAD_S,
        buffer_min=settings.DISPATCH_TRAVEL_BUFFER_MIN,
        capacity=settings.DISPATCH_CAPACITY,
        reminder_before_s=settings.DISPATCH_REMINDER_BEFORE_S,
        no_show_grace_s=settings.DISPATCH_NO_SHOW_GRACE_S,
        retry_s=settings.DISPATCH_RETRY_S,
        scheduled_retry_s=settings.DISPATCH_SCHEDULED_RETRY_S,
        slot_step_min=settings.DISPATCH_SLOT_STEP_MIN,
        dues_limit=settings.DISPATCH_DUES_LIMIT,
        cancellation_fee=settings.CANCELLATION_FEE,
        cancel_free_before_s=settings.CANCELLATION_FREE_BEFORE_S,
        cancel_free_after_assign_s=settings.CANCELLATION_FREE_AFTER_ASSIGN_S,
        weights=ScoreWeights(**settings.MATCHING_WEIGHTS),
    )


def apply_overrides(policy: DispatchPolicy, overrides: dict) -> DispatchPolicy:
    """`policy` with `overrides` applied; an unknown name or a bad value raises Invalid."""
    if not overrides:
        return policy
    if not isinstance(overrides, dict):
        raise Invalid("dispatch_policy must be an object.", field="dispatch_policy")
    known = {f.name for f in fields(DispatchPolicy)}
    changes = {}
    for name, value in overrides.items():
        if name not in known:
            raise Invalid(f"Unknown dispatch rule {name!r}; known: {', '.join(sorted(known))}.", field="dispatch_policy")
        if name == "weights":
            weight_names = {f.name for f in fields(ScoreWeights)}
            if not isinstance(value, dict) or not set(value) <= weight_names:
                raise Invalid(f"weights takes {', '.join(sorted(weight_names))}.", field="dispatch_policy")
            changes[name] = replace(policy.weights, **{k: float(v) for k, v in value.items()})
        elif name == "cancellation_fee":
            try:
                fee = Decimal(str(value)) if not isinstance(value, bool) else None
            except InvalidOperation:
                fee = None
            if fee is None or not fee.is_finite() or fee < 0 or fee != fee.quantize(Decimal("0.01")):
                raise Invalid("cancellation_fee is an amount of at least 0, with at most 2 decimal places.",
                              field="dispatch_policy")
            changes[name] = fee
        elif name == "radius_steps_km":
            if not isinstance(value, list) or not value or not all(isinstance(v, (int, float)) and v > 0 for v in value):
                raise Invalid("radius_steps_km is a non-empty list of positive numbers.", field="dispatch_policy")
            changes[name] = tuple(float(v) for v in value)
        else:
            low = 1 if name in _POSITIVE_INTS else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise Invalid(f"{name} must be an integer of at least {low}.", field="dispatch_policy")
            changes[name] = value
    return replace(policy, **changes)


def policy_for(category) -> DispatchPolicy:
    """The rules for jobs of `category` (None: the defaults)."""
    policy = default_policy()
    if category is None:
        return policy
    policy = apply_overrides(policy, category.dispatch_policy or {})
    columns = {}
    if category.offer_timeout_s:
        columns["offer_timeout_s"] = category.offer_timeout_s
    if category.batch_size:
        columns["batch_size"] = category.batch_size
    return replace(policy, **columns) if columns else policy


def cancellation_fee_due(job, policy: DispatchPolicy, *, now, assigned_at) -> Decimal:
    """What a customer cancelling this ASSIGNED job owes under the category's rule (before any cap): nothing for
    a slot cancelled at least `cancel_free_before_s` ahead, or an instant job within `cancel_free_after_assign_s`
    of its assignment; else `cancellation_fee`."""
    if job.scheduled_at is not None:
        free = now <= job.scheduled_at - timedelta(seconds=policy.cancel_free_before_s)
    else:
        free = assigned_at is not None and now < assigned_at + timedelta(seconds=policy.cancel_free_after_assign_s)
    return Decimal("0.00") if free else policy.cancellation_fee


def search_ends_at(job, policy: DispatchPolicy):
    """When dispatch gives a job up: a lead time before a slot, or a while after an instant search began.

    A slot sent back to dispatch within its lead time (its provider released it late) is
    searched for until its start instead: a late search, with instant offer timeouts.
    """
    started = job.search_started_at or job.created_at
    if job.scheduled_at is None:
        return started + timedelta(seconds=policy.search_deadline_s)
    usual = job.scheduled_at - policy.lead_time
    return job.scheduled_at if started >= usual else usual


def late_slot_search(job, policy: DispatchPolicy) -> bool:
    """Whether a slot is being searched for within its lead time (see `search_ends_at`)."""
    started = job.search_started_at or job.created_at
    return job.scheduled_at is not None and started >= job.scheduled_at - policy.lead_time


def offer_timeout_s(job) -> int:
    """How long a provider has to answer an offer of this job."""
    policy = policy_for(job.category)
    return policy.timeout_s(scheduled=job.scheduled_at is not None and not late_slot_search(job, policy))


def no_show_due_at(job):
    """When an ASSIGNED job not yet started counts as a no-show: its start plus the category's grace period."""
    start = job.starts_at or job.scheduled_at or job.updated_at
    return start + timedelta(seconds=policy_for(job.category).no_show_grace_s)
