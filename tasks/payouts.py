"""Payout tasks: send one payout through the rail (`webhooks` queue, beside the other outbound sends), and a batch
run (beat, when PAYOUTS_EVERY_S is set). Both are safe to run twice or at once: the payout row decides."""
from celery import shared_task

from dispatch.services.payouts import payout_send, payouts_run


@shared_task(name="payouts.send")
def send(payout_id: int) -> str | None:
    payout = payout_send(payout_id=payout_id)
    return payout.status if payout is not None else None


@shared_task(name="payouts.run")
def run() -> int:
    return len(payouts_run())
