"""GET /providers/me/earnings/: the query it takes and the periods it answers (dispatch/earnings.py)."""
from rest_framework import serializers

from dispatch.earnings import GROUPS

MONEY = {"max_digits": 14, "decimal_places": 2}


class EarningsQuerySerializer(serializers.Serializer):
    # `from` is a Python keyword: the field is declared under it below.
    to = serializers.DateField(required=False, help_text="Last local day, included (default: today)")
    group = serializers.ChoiceField(choices=GROUPS, default="day")

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.DateField(required=False, help_text="First local day (default: 29 days before to)")
        return fields


class EarningsFiguresSerializer(serializers.Serializer):
    jobs = serializers.IntegerField(help_text="Completed jobs (invoices issued)")
    gross = serializers.DecimalField(**MONEY, help_text="What the completed jobs were invoiced at")
    cash = serializers.DecimalField(**MONEY, help_text="Of gross, collected by hand (CASH jobs)")
    wallet = serializers.DecimalField(**MONEY, help_text="Paid into the wallet: wallet jobs and cancellation fees")
    fees = serializers.DecimalField(**MONEY, help_text="Cancellation fees earned")
    commission = serializers.DecimalField(**MONEY, help_text="The platform's commission")
    refunds = serializers.DecimalField(**MONEY, help_text="Refunded of the provider's jobs, less the commission the "
                                       "platform gave back with it")
    net = serializers.DecimalField(**MONEY, help_text="gross + fees - commission - refunds")


class EarningsPeriodSerializer(EarningsFiguresSerializer):
    start = serializers.DateField(help_text="First local day of the period")


class EarningsSerializer(serializers.Serializer):
    to = serializers.DateField()
    group = serializers.ChoiceField(choices=GROUPS)
    time_zone = serializers.CharField(help_text="The provider's zone: what a day is")
    totals = EarningsFiguresSerializer()
    periods = EarningsPeriodSerializer(many=True)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.DateField()
        return fields
