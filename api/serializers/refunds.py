"""A refund ops ask for, and the credit note it issues."""
from decimal import Decimal

from rest_framework import serializers

from api.serializers.fields import StrictDecimalField
from dispatch.models import CreditNote


class RefundSerializer(serializers.Serializer):
    amount = StrictDecimalField(max_digits=10, decimal_places=2, min_value=Decimal("0.01"), required=False,
                                help_text="Default: all that is left to refund")
    reason = serializers.CharField(max_length=500, help_text="Why: the customer and the provider are told")


class CreditNoteSerializer(serializers.ModelSerializer):
    number = serializers.CharField(read_only=True)
    job_id = serializers.IntegerField(read_only=True)
    pdf = serializers.SerializerMethodField()

    class Meta:
        model = CreditNote
        fields = ["id", "number", "job_id", "amount", "commission", "reason", "issued_at", "pdf"]
        read_only_fields = fields

    def get_pdf(self, note) -> str:
        return f"/services/jobs/{note.job_id}/credit_notes/{note.pk}/"
