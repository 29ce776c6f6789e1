"""Payouts: what ops ask for (one provider, or everyone past the minimum) and a payout as listed."""
from decimal import Decimal

from rest_framework import serializers

from api.serializers.fields import StrictDecimalField, StrictIntegerField
from dispatch.models import Payout, PayoutStatus


class PayoutRequestSerializer(serializers.Serializer):
    provider = StrictIntegerField(min_value=1, max_value=2**63 - 1, help_text="The provider to pay out")
    amount = StrictDecimalField(max_digits=10, decimal_places=2, min_value=Decimal("0.01"), required=False,
                                help_text="Default: the whole balance")


class PayoutSerializer(serializers.ModelSerializer):
    provider_id = serializers.IntegerField()
    provider_name = serializers.CharField(source="provider.display_name")
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)

    class Meta:
        model = Payout
        fields = ["id", "provider_id", "provider_name", "amount", "status", "rail_id", "failure_reason", "created_by",
                  "created_at", "settled_at"]
        read_only_fields = fields


class PayoutFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=PayoutStatus.choices, required=False)


class PayoutBatchSerializer(serializers.Serializer):
    created = PayoutSerializer(many=True, help_text="The payouts this request made (none again for a key already run)")
