"""A provider's dues (commission owed on cash jobs): the standing, paying it, and ops recording cash."""
from decimal import Decimal

from rest_framework import serializers

from api.serializers.fields import StrictDecimalField
from api.serializers.wallet import LedgerEntrySerializer

MONEY = {"max_digits": 12, "decimal_places": 2}


class DuesSerializer(serializers.Serializer):
    owed = serializers.DecimalField(**MONEY, help_text="Commission owed on cash jobs (what the wallet is below zero)")
    limit = serializers.DecimalField(**MONEY, allow_null=True,
                                     help_text="The strictest dues limit of the provider's categories; null: none")
    blocked = serializers.BooleanField(help_text="Owes a limit or more: no new job requests (in blocked_categories)")
    blocked_categories = serializers.ListField(child=serializers.IntegerField())


class DuesPaySerializer(serializers.Serializer):
    amount = StrictDecimalField(max_digits=10, decimal_places=2, min_value=Decimal("0.01"), required=False,
                                help_text="Default: everything owed")
    payment_token = serializers.CharField(
        max_length=255, required=False, default="tok_test",
        help_text="The payment method from the gateway's client SDK (test mode: tok_decline is declined).",
    )


class DuesPaidSerializer(DuesSerializer):
    entry = LedgerEntrySerializer(help_text="The payment's line in the provider's ledger.")


class SettlementSerializer(serializers.Serializer):
    amount = StrictDecimalField(max_digits=10, decimal_places=2, min_value=Decimal("0.01"))
    reference = serializers.CharField(max_length=100, help_text="The receipt's number: the same one twice counts once")


class OwingProviderSerializer(serializers.Serializer):
    provider_id = serializers.IntegerField(source="pk")
    name = serializers.CharField(source="display_name")
    username = serializers.CharField()
    owed = serializers.DecimalField(**MONEY)
    blocked = serializers.BooleanField()
