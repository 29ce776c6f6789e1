"""A provider's earnings per day, week or month, read from what the money left behind: invoices and the ledger.

Nothing is recomputed from prices. A completed job's invoice froze its total and how it was paid; the
provider's ledger holds what moved through their wallet: job payments and cancellation fees in,
commission out. Periods are the provider's local days (weeks start on Monday), every period of the
range listed, empty ones too, so a chart has no gaps.

    gross       what completed jobs were invoiced at (cash and wallet)
    cash        of that, collected by hand (CASH invoices): the customer paid the provider directly
    wallet      what reached the provider's wallet: job payments plus cancellation fees
    fees        cancellation fees (already in `wallet`)
    commission  what the platform took (cash jobs' commission is owed: the wallet goes below zero)
    refunds     what ops refunded of the provider's jobs, less the commission the platform gave back with it
    net         gross + fees - commission - refunds: what the provider keeps
"""
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from dispatch.errors import Forbidden, Invalid
from dispatch.models import Invoice, LedgerEntry, PaymentMethod, TransferKind, User

GROUPS = ("day", "week", "month")
# The most periods one answer lists: two years of months, a year of weeks or days.
MAX_PERIODS = {"day": 366, "week": 106, "month": 24}
DEFAULT_DAYS = 30
ZERO = Decimal("0.00")


@dataclass
class Period:
    start: date
    jobs: int = 0
    gross: Decimal = ZERO
    cash: Decimal = ZERO
    wallet: Decimal = ZERO
    fees: Decimal = ZERO
    commission: Decimal = ZERO
    refunds: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        return self.gross + self.fees - self.commission - self.refunds

    def as_dict(self) -> dict:
        return {"start": self.start, "jobs": self.jobs, "gross": self.gross, "cash": self.cash, "wallet": self.wallet,
                "fees": self.fees, "commission": self.commission, "refunds": self.refunds, "net": self.net}


@dataclass
class Earnings:
    time_zone: str
    group: str
    first: date
    last: date
    periods: list[Period] = field(default_factory=list)

    def as_dict(self) -> dict:
        total = Period(start=self.first)
        for p in self.periods:
            total.jobs += p.jobs
            total.gross += p.gross
            total.cash += p.cash
            total.wallet += p.wallet
            total.fees += p.fees
            total.commission += p.commission
            total.refunds += p.refunds
        totals = total.as_dict()
        del totals["start"]
        return {"from": self.first, "to": self.last, "group": self.group, "time_zone": self.time_zone,
                "totals": totals, "periods": [p.as_dict() for p in self.periods]}


def provider_earnings(*, provider: User, first: date | None = None, last: date | None = None,
                      group: str = "day", now: datetime | None = None) -> Earnings:
    """The provider's earnings from local day `first` to `last` (both included), per `group`.

    Defaults: the last DEFAULT_DAYS days up to today (the provider's today). A range past
    MAX_PERIODS periods, or backwards, is refused (400).
    """
    if not provider.is_provider:
        raise Forbidden("Only providers have earnings.")
    if group not in GROUPS:
        raise Invalid(f"group must be one of {', '.join(GROUPS)}.", field="group")
    zone = ZoneInfo(provider.provider_profile.time_zone)
    today = (now or datetime.now(tz=zone)).astimezone(zone).date()
    last = last or today
    first = first or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise Invalid("from must not be after to.", field="from")
    starts = _period_starts(first, last, group)
    if len(starts) > MAX_PERIODS[group]:
        raise Invalid(f"At most {MAX_PERIODS[group]} {group}s at once; narrow from and to, or group by a longer "
                      "period.", field="from")
    periods = {start: Period(start=start) for start in starts}
    since = datetime.combine(first, time.min, tzinfo=zone)
    until = datetime.combine(last + timedelta(days=1), time.min, tzinfo=zone)

    def period_of(moment: datetime) -> Period:
        return periods[_period_start(moment.astimezone(zone).date(), group)]

    invoices = Invoice.objects.filter(job__provider=provider, issued_at__gte=since, issued_at__lt=until)
    for issued_at, total, method in invoices.values_list("issued_at", "total", "payment_method"):
        period = period_of(issued_at)
        period.jobs += 1
        period.gross += total
        if method == PaymentMethod.CASH:
            period.cash += total
    entries = LedgerEntry.objects.filter(wallet__user=provider, created_at__gte=since, created_at__lt=until)
    for created_at, amount, kind in entries.values_list("created_at", "amount", "transfer__kind"):
        period = period_of(created_at)
        if kind == TransferKind.COMMISSION:
            period.commission -= amount  # out of the provider's wallet: a negative entry
        elif kind in (TransferKind.REFUND, TransferKind.REFUND_COMMISSION):
            period.refunds -= amount  # the refund out (negative), the commission given back in (positive)
        elif kind in (TransferKind.JOB_PAYMENT, TransferKind.CANCELLATION_FEE):
            period.wallet += amount
            if kind == TransferKind.CANCELLATION_FEE:
                period.fees += amount
    return Earnings(time_zone=zone.key, group=group, first=first, last=last, periods=list(periods.values()))


def _period_start(day: date, group: str) -> date:
    if group == "week":
        return day - timedelta(days=day.weekday())
    if group == "month":
        return day.replace(day=1)
    return day


def _period_starts(first: date, last: date, group: str) -> list[date]:
    starts, start = [], _period_start(first, group)
    while start <= last:
        starts.append(start)
        if len(starts) > MAX_PERIODS[group]:
            break
        if group == "month":
            start = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        else:
            start += timedelta(days=7 if group == "week" else 1)
    return starts
