"""Money: wallets, the double-entry ledger (a Transfer is two LedgerEntry rows summing to zero), invoices.

A wallet's `balance` is a cache of its ledger, written under the wallet's row lock
together with the entries; `dispatch.services.wallet.ledger_audit` checks the two agree.
See docs/money.md.
"""
from django.conf import settings
from django.db import models
from django.db.models import Q


class WalletKind(models.TextChoices):
    CUSTOMER = "customer", "Customer"
    PROVIDER = "provider", "Provider"
    # System accounts, one each, owned by nobody: the platform's revenue (commission, fees)
    # and the payment gateway's clearing account, the other side of every top-up.
    PLATFORM = "platform", "Platform"
    GATEWAY = "gateway", "Payment gateway"
    # Cash handed to ops (a provider settling their dues at the office): like the gateway, money from outside.
    CASH_DESK = "cash_desk", "Cash desk"
    # Payouts: money on its way to a provider's bank (PENDING), and money that left for it (PAID).
    PAYOUTS_PENDING = "payouts_pending", "Payouts in flight"
    PAID_OUT = "paid_out", "Paid out"


USER_WALLETS = [WalletKind.CUSTOMER, WalletKind.PROVIDER]
SYSTEM_WALLETS = [WalletKind.PLATFORM, WalletKind.GATEWAY, WalletKind.CASH_DESK, WalletKind.PAYOUTS_PENDING,
                  WalletKind.PAID_OUT]


class Wallet(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="wallet"
    )
    kind = models.CharField(max_length=16, choices=WalletKind.choices)
    balance = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=WalletKind.values), name="wallet_kind_valid"),
            models.CheckConstraint(
                condition=Q(kind__in=USER_WALLETS, user__isnull=False) | Q(kind__in=SYSTEM_WALLETS, user__isnull=True),
                name="wallet_owner_matches_kind",
            ),
            models.UniqueConstraint(fields=["kind"], condition=Q(user__isnull=True), name="one_wallet_per_system_account"),
            # Who may go below zero: a provider (commission owed on cash jobs), the gateway and the
            # cash desk (all money that ever came in through them). Customers and the platform never.
            models.CheckConstraint(
                condition=Q(kind__in=[WalletKind.CUSTOMER, WalletKind.PLATFORM, WalletKind.PAYOUTS_PENDING,
                                      WalletKind.PAID_OUT], balance__gte=0)
                | Q(kind=WalletKind.PROVIDER)
                | Q(kind__in=[WalletKind.GATEWAY, WalletKind.CASH_DESK], balance__lte=0),
                name="wallet_balance_sign",
            ),
        ]

    def __str__(self) -> str:
        return f"Wallet {self.pk} ({self.kind}{f' of user {self.user_id}' if self.user_id else ''})"


class TransferKind(models.TextChoices):
    TOPUP = "TOPUP", "Top-up"
    JOB_PAYMENT = "JOB_PAYMENT", "Job payment"
    COMMISSION = "COMMISSION", "Commission"
    CANCELLATION_FEE = "CANCELLATION_FEE", "Cancellation fee"
    # A provider clearing the commission they owe on cash jobs: paid through the gateway, or in cash to ops.
    DUES_PAYMENT = "DUES_PAYMENT", "Dues paid"
    CASH_SETTLEMENT = "CASH_SETTLEMENT", "Dues settled in cash"
    # A payout: out of the wallet while the bank transfer is on its way, then sent, or back if it failed.
    PAYOUT = "PAYOUT", "Payout"
    PAYOUT_SENT = "PAYOUT_SENT", "Payout sent"
    PAYOUT_RETURNED = "PAYOUT_RETURNED", "Payout returned"
    # Ops refunding a completed job: the provider gives the customer the amount, the platform its commission share back.
    REFUND = "REFUND", "Refund"
    REFUND_COMMISSION = "REFUND_COMMISSION", "Commission refunded"


class Transfer(models.Model):
    """One money movement: `amount` from one wallet to another, booked as two ledger entries.

    `reference` names the movement's reason (`job:12:payment`, `topup:7:<key>`); being
    unique, it makes the database refuse to move the same money twice.
    """

    kind = models.CharField(max_length=20, choices=TransferKind.choices)
    reference = models.CharField(max_length=300, unique=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    job = models.ForeignKey("dispatch.Job", on_delete=models.PROTECT, null=True, blank=True, related_name="transfers")
    memo = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Who recorded it, for movements a person makes by hand (ops recording a cash settlement); the memo
    # names them too, so the trail survives the account.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="transfers_recorded"
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=TransferKind.values), name="transfer_kind_valid"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="transfer_amount_positive"),
        ]


class LedgerEntry(models.Model):
    """One side of a transfer: negative leaves the wallet, positive enters it."""

    transfer = models.ForeignKey(Transfer, on_delete=models.PROTECT, related_name="entries")
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="entries")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    # The wallet's balance right after this entry: a statement reads without summing.
    balance_after = models.DecimalField(max_digits=12, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="ledger_entry_not_zero"),
            # With the service writing exactly one debit and one credit: two rows per transfer.
            models.UniqueConstraint(fields=["transfer", "wallet"], name="ledger_entry_once_per_wallet"),
        ]
        indexes = [models.Index(fields=["wallet", "-id"])]


class Invoice(models.Model):
    """Issued when a job completes, with its figures frozen; the PDF is rendered from it on request."""

    job = models.OneToOneField("dispatch.Job", on_delete=models.PROTECT, related_name="invoice")
    issued_at = models.DateTimeField()
    total = models.DecimalField(max_digits=10, decimal_places=2)
    commission = models.DecimalField(max_digits=10, decimal_places=2)
    payment_method = models.CharField(max_length=8)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(total__gte=0, commission__gte=0), name="invoice_money_not_negative"),
        ]

    @property
    def number(self) -> str:
        return f"INV-{self.issued_at:%Y}-{self.pk:06d}"


class CreditNote(models.Model):
    """A refund of a completed job, in full or in part, issued by ops: the invoice's counterpart (its PDF says what
    was refunded and why). `key` makes a refund once (dispatch/services/refunds.py)."""

    job = models.ForeignKey("dispatch.Job", on_delete=models.PROTECT, related_name="credit_notes")
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    commission = models.DecimalField(max_digits=10, decimal_places=2, help_text="The platform's share given back")
    reason = models.CharField(max_length=500)
    key = models.CharField(max_length=300, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="credit_notes_issued"
    )
    issued_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0, commission__gte=0), name="credit_note_amounts_valid"),
        ]

    @property
    def number(self) -> str:
        return f"CN-{self.issued_at:%Y}-{self.pk:06d}"


class PayoutStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    PAID = "PAID", "Paid"
    FAILED = "FAILED", "Failed"


class Payout(models.Model):
    """Money from a provider's wallet to their bank: PENDING (out of the wallet, on its way) → PAID, or FAILED
    (returned to the wallet). `key` makes it once: the same key never pays out twice (dispatch/services/payouts.py)."""

    provider = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payouts")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    status = models.CharField(max_length=8, choices=PayoutStatus.choices, default=PayoutStatus.PENDING)
    key = models.CharField(max_length=300, unique=True)
    rail_id = models.CharField(max_length=100, blank=True)
    failure_reason = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="payouts_made"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payout_amount_positive"),
            models.CheckConstraint(condition=Q(status__in=PayoutStatus.values), name="payout_status_valid"),
        ]
        indexes = [models.Index(fields=["status", "id"])]
