"""Jobs: the booking request, and the job as each party may see it.

Who sees what: phones only once the job is ASSIGNED (or later); a provider sees the
customer's first name until then; the customer sees the offer history without other
providers' identities; ops see everything, score breakdowns included.
"""
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.serializers.fields import (
    RowsByIdField,
    StrictDateTimeField,
    StrictPrimaryKeyRelatedField,
    latitude_field,
    longitude_field,
)
from api.serializers.providers import CategoryRefSerializer
from dispatch.models import Job, JobStatus, PaymentMethod, Role, ServiceCategory, ServiceItem, User

MAX_ITEMS_PER_JOB = 50
CONTACT_VISIBLE = (JobStatus.ASSIGNED, JobStatus.IN_PROGRESS, JobStatus.COMPLETED)


class BookingSerializer(serializers.Serializer):
    category = StrictPrimaryKeyRelatedField(queryset=ServiceCategory.objects.all())
    provider = StrictPrimaryKeyRelatedField(
        queryset=User.objects.filter(role=Role.PROVIDER, is_active=True),
        required=False,
        allow_null=True,
        help_text="Absent or null: any nearby provider.",
    )
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    address = serializers.CharField(max_length=255)
    latitude = latitude_field()
    longitude = longitude_field()
    item_ids = RowsByIdField(queryset=ServiceItem.objects.all(), max_length=MAX_ITEMS_PER_JOB)
    payment_method = serializers.ChoiceField(choices=PaymentMethod.choices, default=PaymentMethod.CASH)
    scheduled_at = StrictDateTimeField(required=False, allow_null=True, help_text="Absent or null: now.")

    def validate_item_ids(self, items):
        if not items:
            raise serializers.ValidationError("Pick at least one item.")
        return items


class JobItemSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="item_id")
    name = serializers.CharField(source="item.name")
    price = serializers.DecimalField(max_digits=10, decimal_places=2)


class PartySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    phone = serializers.CharField(allow_null=True)


class OfferHistorySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    rank = serializers.IntegerField()
    status = serializers.CharField()
    offered_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    responded_at = serializers.DateTimeField(allow_null=True)
    provider_id = serializers.IntegerField(required=False, help_text="Ops, or the offer's own provider, only.")
    score = serializers.FloatField(required=False, allow_null=True, help_text="Ops only.")
    score_breakdown = serializers.DictField(required=False, help_text="Ops only.")


# Rendering with DRF's own fields, built once: what each field of a job renders as, without building them per job.
_DATETIME = serializers.DateTimeField()
_MONEY = serializers.DecimalField(max_digits=10, decimal_places=2)


def _moment(value):
    return None if value is None else _DATETIME.to_representation(value)


def _money(value) -> str:
    return _MONEY.to_representation(value)


class JobSerializer(serializers.ModelSerializer):
    category = serializers.SerializerMethodField()
    items = JobItemSerializer(source="job_items", many=True, read_only=True)
    customer = serializers.SerializerMethodField()
    provider = serializers.SerializerMethodField()
    offers = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "status",
            "category",
            "items",
            "description",
            "address",
            "latitude",
            "longitude",
            "scheduled_at",
            "starts_at",
            "duration_min",
            "payment_method",
            "total_price",
            "commission_amount",
            "customer",
            "provider",
            "requested_provider",
            "offers",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @property
    def viewer(self) -> User:
        return self.context["request"].user

    def to_representation(self, job) -> dict:
        """The JSON DRF's field-by-field rendering gives (tests/api/test_job_representation.py checks), written out.

        Building a ModelSerializer's fields for each job cost more than a booking's own SQL did;
        the declared fields above still describe the schema.
        """
        return {
            "id": job.pk,
            "status": job.status,
            "category": self.get_category(job),
            "items": [{"id": ji.item_id, "name": ji.item.name, "price": _money(ji.price)} for ji in job.job_items.all()],
            "description": job.description,
            "address": job.address,
            "latitude": job.latitude,
            "longitude": job.longitude,
            "scheduled_at": _moment(job.scheduled_at),
            "starts_at": _moment(job.starts_at),
            "duration_min": job.duration_min,
            "payment_method": job.payment_method,
            "total_price": _money(job.total_price),
            "commission_amount": _money(job.commission_amount),
            "customer": self.get_customer(job),
            "provider": self.get_provider(job),
            "requested_provider": job.requested_provider_id,
            "offers": self.get_offers(job),
            "created_at": _moment(job.created_at),
            "updated_at": _moment(job.updated_at),
        }

    @extend_schema_field(CategoryRefSerializer)
    def get_category(self, job) -> dict:
        return {"id": job.category_id, "name": job.category.name}

    def _contact_visible(self, job) -> bool:
        return self.viewer.is_ops or job.status in CONTACT_VISIBLE

    @extend_schema_field(PartySerializer)
    def get_customer(self, job) -> dict:
        full = self.viewer.pk == job.customer_id or self._contact_visible(job)
        return {
            "id": job.customer_id,
            "name": job.customer.display_name if full else job.customer.first_name_only,
            "phone": job.customer.phone if self._contact_visible(job) else None,
        }

    @extend_schema_field(PartySerializer(allow_null=True))
    def get_provider(self, job) -> dict | None:
        if not job.provider_id:
            return None
        return {
            "id": job.provider_id,
            "name": job.provider.display_name,
            "phone": job.provider.phone if self._contact_visible(job) else None,
        }

    @extend_schema_field(OfferHistorySerializer(many=True))
    def get_offers(self, job) -> list[dict]:
        viewer = self.viewer
        rows = []
        for offer in job.offers.all():
            row = {
                "id": offer.pk,
                "rank": offer.rank,
                "status": offer.status,
                "offered_at": _moment(offer.offered_at),
                "expires_at": _moment(offer.expires_at),
                "responded_at": _moment(offer.responded_at),
            }
            if viewer.is_ops:
                row |= {"provider_id": offer.provider_id, "score": offer.score, "score_breakdown": offer.score_breakdown}
            elif viewer.pk == job.customer_id:
                pass
            elif viewer.pk == offer.provider_id:
                row["provider_id"] = offer.provider_id
            else:
                continue
            rows.append(row)
        return rows


class ReleaseSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, help_text="Why you cannot make it (the customer is told).")
