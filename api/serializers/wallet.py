"""The wallet: balance, ledger entries, top-up request."""
from decimal import Decimal

from rest_framework import serializers

from api.serializers.fields import StrictDecimalField
from dispatch.models import LedgerEntry


class LedgerEntrySerializer(serializers.ModelSerializer):
    """One line of the user's statement: positive money in, negative money out."""

    kind = serializers.CharField(
        source="transfer.kind",
        help_text="TOPUP, JOB_PAYMENT, COMMISSION, CANCELLATION_FEE, DUES_PAYMENT or CASH_SETTLEMENT.",
    )
    job_id = serializers.IntegerField(source="transfer.job_id", allow_null=True)
    description = serializers.CharField(source="transfer.memo")
    transfer_id = serializers.IntegerField()

    class Meta:
        model = LedgerEntry
        fields = ["id", "transfer_id", "kind", "amount", "balance_after", "job_id", "description", "created_at"]
        read_only_fields = fields


class WalletSerializer(serializers.Serializer):
    balance = serializers.DecimalField(max_digits=12, decimal_places=2)
    reserved = serializers.DecimalField(
        max_digits=12, decimal_places=2, help_text="Held by the customer's open WALLET bookings."
    )
    available = serializers.DecimalField(max_digits=12, decimal_places=2, help_text="What a new booking can use.")


class WalletPageSerializer(WalletSerializer):
    """GET /wallet/: the balance, and the ledger newest first, paginated."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = LedgerEntrySerializer(many=True)


class TopUpSerializer(serializers.Serializer):
    amount = StrictDecimalField(max_digits=10, decimal_places=2, min_value=Decimal("0.01"))
    payment_token = serializers.CharField(
        max_length=255, required=False, default="tok_test",
        help_text="The payment method from the gateway's client SDK (test mode: tok_decline is declined).",
    )


class TopUpResultSerializer(WalletSerializer):
    entry = LedgerEntrySerializer(help_text="The top-up's line in the ledger.")
