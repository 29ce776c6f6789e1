"""Jobs: the booking request, and the job as each party may see it.

Who sees what: a party never sees the other's phone while PHONE_MASKING is on (with it off, while
the job is ASSIGNED or IN_PROGRESS: dispatch/services/contact.py) and `contact` says how to call
instead; a provider sees the customer's first name until assignment; the customer sees the offer
history without other providers' identities; ops see everything, phones and score breakdowns included.
"""
from django.conf import settings
from django.urls import reverse
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
from dispatch.services.contact import calls_open, phone_shown

MAX_ITEMS_PER_JOB = 50
# A provider sees the customer's full name from assignment on (phones: dispatch.services.contact.phone_shown).
FULL_NAME_VISIBLE = (JobStatus.ASSIGNED, JobStatus.IN_PROGRESS, JobStatus.COMPLETED)


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
    phone = serializers.CharField(
        allow_null=True,
        help_text="The real number: always one's own and to ops; to the other party only with PHONE_MASKING off "
        "while the job is ASSIGNED or IN_PROGRESS; else null (see the job's `contact`).",
    )


class ContactSerializer(serializers.Serializer):
    masked = serializers.BooleanField(help_text="Phone numbers are hidden from the other party (PHONE_MASKING).")
    in_app = serializers.BooleanField(
        help_text="You can call the other party now (a party of an ASSIGNED or IN_PROGRESS job): in the app, "
        "with GET /services/jobs/{id}/call/ and the socket."
    )
    bridge = serializers.CharField(
        allow_null=True,
        help_text="While masked and callable: POST here for a masked number that reaches the other party. Else null.",
    )


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
    contact = serializers.SerializerMethodField()

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
            "contact",
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
            "contact": self.get_contact(job),
            "created_at": _moment(job.created_at),
            "updated_at": _moment(job.updated_at),
        }

    @extend_schema_field(CategoryRefSerializer)
    def get_category(self, job) -> dict:
        return {"id": job.category_id, "name": job.category.name}

    def _phone(self, job, party) -> str | None:
        return party.phone if phone_shown(job=job, viewer=self.viewer, party_id=party.pk) else None

    @extend_schema_field(PartySerializer)
    def get_customer(self, job) -> dict:
        viewer = self.viewer
        full = viewer.is_ops or viewer.pk == job.customer_id or job.status in FULL_NAME_VISIBLE
        return {
            "id": job.customer_id,
            "name": job.customer.display_name if full else job.customer.first_name_only,
            "phone": self._phone(job, job.customer),
        }

    @extend_schema_field(PartySerializer(allow_null=True))
    def get_provider(self, job) -> dict | None:
        if not job.provider_id:
            return None
        return {
            "id": job.provider_id,
            "name": job.provider.display_name,
            "phone": self._phone(job, job.provider),
        }

    @extend_schema_field(ContactSerializer)
    def get_contact(self, job) -> dict:
        viewer = self.viewer
        masked = settings.PHONE_MASKING and not viewer.is_ops
        callable_now = calls_open(job=job, viewer=viewer)
        bridge = reverse("job-call-bridge", args=[job.pk]) if masked and callable_now else None
        return {"masked": masked, "in_app": callable_now, "bridge": bridge}

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
