"""/services/jobs/: book, list, detail, the lifecycle actions, chat, review and the job's event history."""
import hashlib
import json

import django_filters
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from api.headers import idempotency_key
from api.pagination import ChatPagination, StandardPagination
from api.path_ids import path_id
from api.permissions import IsCustomer, IsProvider
from api.schema import ERROR
from api.serializers.chat import MessagePageSerializer, MessageSerializer
from api.serializers.events import EventPageSerializer, EventSerializer
from api.serializers.jobs import BookingSerializer, JobSerializer, ReleaseSerializer
from api.serializers.reviews import CustomerRatingSerializer, ReviewSerializer
from api.throttles import BOOKING_THROTTLES, CHAT_THROTTLES
from dispatch import selectors
from dispatch.models import Job, JobStatus
from dispatch.services.booking import job_book, job_book_once
from dispatch.services.chat import message_send
from dispatch.services.lifecycle import job_cancel, job_complete, job_mark_no_show, job_release, job_start
from dispatch.services.offers import offer_accept, offer_reject
from dispatch.services.reviews import customer_rating_create, review_create


class JobFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=JobStatus.choices)

    class Meta:
        model = Job
        fields = ["status"]


# Actions only one role may call; the rest are open to any signed-in user and decided per object.
ROLE_FOR_ACTION = {
    "create": IsCustomer,
    "review": IsCustomer,
    "rate_customer": IsProvider,
    "accept": IsProvider,
    "reject": IsProvider,
    "start_job": IsProvider,
    "complete_job": IsProvider,
    "release": IsProvider,
}


class JobViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = JobSerializer
    filterset_class = JobFilter
    throttle_classes = BOOKING_THROTTLES + CHAT_THROTTLES  # each counts only its own action
    lookup_value_regex = "[^/]+"  # any id reaches the view, which answers 404 JSON for nonsense

    queryset = Job.objects.none()  # for the schema; requests use get_queryset

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return selectors.jobs_visible_to(self.request.user)

    def get_permissions(self):
        role = ROLE_FOR_ACTION.get(self.action)
        return [role()] if role else super().get_permissions()

    def _job(self, job_id, status_code=status.HTTP_200_OK):
        job = selectors.job_for(self.request.user, job_id)
        return Response(self.get_serializer(job).data, status=status_code)

    def _shown(self, job, status_code=status.HTTP_200_OK):
        """The job a service just returned (the caller's to see, as the service let them act on it)."""
        return Response(self.get_serializer(selectors.job_shown(job)).data, status=status_code)

    def retrieve(self, request, pk=None):
        return self._job(path_id(pk))

    @extend_schema(
        request=BookingSerializer,
        responses={201: JobSerializer, 422: ERROR, 503: ERROR},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="Retry-safe booking: the same key and body return the same job.",
            )
        ],
    )
    def create(self, request):
        data = BookingSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        fields["items"] = fields.pop("item_ids")
        key = idempotency_key(request)
        if key is None:
            return self._shown(job_book(customer=request.user, **fields), status.HTTP_201_CREATED)
        job, created = job_book_once(
            idempotency_key=key, fingerprint=_fingerprint(request.data), customer=request.user, **fields
        )
        # A retry answers the first booking as it stands now, read afresh.
        return self._shown(job, status.HTTP_201_CREATED) if created else self._job(job.pk, status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: JobSerializer, 409: ERROR})
    @action(detail=True, methods=["post"])
    def accept(self, request, pk=None):
        return self._shown(offer_accept(job_id=path_id(pk), provider=request.user))

    @extend_schema(
        request=None,
        responses={
            200: inline_serializer(
                "Rejected", {"job_id": serializers.IntegerField(), "status": serializers.CharField()}
            ),
            409: ERROR,
        },
    )
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        offer_reject(job_id=path_id(pk), provider=request.user)
        # The job is no longer theirs to see; answer with what they did.
        return Response({"job_id": path_id(pk), "status": "REJECTED"})

    @extend_schema(request=None, responses={200: JobSerializer, 409: ERROR})
    @action(detail=True, methods=["post"])
    def start_job(self, request, pk=None):
        return self._shown(job_start(job_id=path_id(pk), provider=request.user))

    @extend_schema(request=None, responses={200: JobSerializer, 409: ERROR})
    @action(detail=True, methods=["post"])
    def complete_job(self, request, pk=None):
        return self._shown(job_complete(job_id=path_id(pk), provider=request.user))

    @extend_schema(
        request=ReleaseSerializer,
        responses={
            200: inline_serializer("Released", {"job_id": serializers.IntegerField(), "status": serializers.CharField()}),
            409: ERROR,
        },
        description="The assigned provider hands back an ASSIGNED job they cannot make, with a reason. The job "
        "returns to dispatch without them (the customer gets JOB_PROVIDER_RELEASED); it counts against them in "
        "ranking.",
    )
    @action(detail=True, methods=["post"])
    def release(self, request, pk=None):
        data = ReleaseSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job_release(job_id=path_id(pk), provider=request.user, reason=data.validated_data["reason"])
        # No longer theirs to see; answer with what they did.
        return Response({"job_id": path_id(pk), "status": "RELEASED"})

    @extend_schema(
        request=None,
        responses={200: JobSerializer, 409: ERROR},
        description="The customer (or ops) reports that the assigned provider did not turn up: allowed once the "
        "job's start plus the grace period has passed. The job returns to dispatch without them.",
    )
    @action(detail=True, methods=["post"])
    def no_show(self, request, pk=None):
        return self._shown(job_mark_no_show(job_id=path_id(pk), actor=request.user))

    @extend_schema(request=None, responses={200: JobSerializer, 409: ERROR})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._shown(job_cancel(job_id=path_id(pk), actor=request.user))

    @extend_schema(
        methods=["GET"],
        parameters=[
            OpenApiParameter("before", int, description="Messages older than this message id (scrolling up)."),
            OpenApiParameter("after", int, description="Messages newer than this message id (catching up)."),
            OpenApiParameter(
                "page_size",
                int,
                description=f"1 to {ChatPagination.max_page_size}, default {ChatPagination.page_size}.",
            ),
        ],
        responses=MessagePageSerializer,
    )
    @extend_schema(methods=["POST"], request=MessageSerializer, responses={201: MessageSerializer, 409: ERROR})
    @action(detail=True, methods=["get", "post"], filterset_class=None)
    def messages(self, request, pk=None):
        """A job's chat, for its customer and assigned provider (and ops, read-only); others get 404.

        GET pages by message id, each page oldest to newest: no parameter gives the latest
        messages, `?before=<id>` the ones before (scroll up, following `next`), `?after=<id>`
        the ones after (after a reconnect, from the last id the client has). POST sends
        `{"content"}` (1 to 2000 characters) while the job is ASSIGNED or IN_PROGRESS
        (409 otherwise); the other party gets NEW_MESSAGE on their socket. The socket's
        `{"type": "chat"}` frame does the same (docs/realtime.md).
        """
        if request.method == "POST":
            data = MessageSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            message = message_send(job_id=path_id(pk), sender=request.user, content=data.validated_data["content"])
            return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)
        paginator = ChatPagination()
        page = paginator.paginate_queryset(selectors.messages_for(request.user, path_id(pk)), request, view=self)
        return paginator.get_paginated_response(MessageSerializer(page, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("page", int, description="A page number (1 is the oldest events)."),
            OpenApiParameter(
                "page_size", int, description=f"Up to {StandardPagination.max_page_size}, default {StandardPagination.page_size}."
            ),
        ],
        responses=EventPageSerializer,
    )
    @action(detail=True, methods=["get"], filterset_class=None)
    def events(self, request, pk=None):
        """The job's timeline as you were told it: your own events of the job, oldest first.

        Each item is exactly what the notification socket sent (or would have sent) you, with its
        `event_id`, so a page reloaded mid-job shows the whole story and drops the copies the
        socket also delivers. Only for a job you can see (else 404); never another user's events.
        Events older than EVENTS_RETENTION_DAYS are pruned.
        """
        paginator = StandardPagination()
        page = paginator.paginate_queryset(selectors.job_events_for(request.user, path_id(pk)), request, view=self)
        return paginator.get_paginated_response(EventSerializer(page, many=True).data)

    @extend_schema(request=ReviewSerializer, responses={201: ReviewSerializer, 409: ERROR})
    @action(detail=True, methods=["post"], filterset_class=None)
    def review(self, request, pk=None):
        data = ReviewSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        review = review_create(job_id=path_id(pk), customer=request.user, **data.validated_data)
        return Response(ReviewSerializer(review).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=CustomerRatingSerializer, responses={201: CustomerRatingSerializer, 409: ERROR},
                   description="The provider rates the customer of their COMPLETED job, once (1 to 5). Providers see a "
                   "customer's average on the offers they get; no customer sees another's.")
    @action(detail=True, methods=["post"], filterset_class=None)
    def rate_customer(self, request, pk=None):
        data = CustomerRatingSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rated = customer_rating_create(job_id=path_id(pk), provider=request.user, **data.validated_data)
        return Response(CustomerRatingSerializer(rated).data, status=status.HTTP_201_CREATED)



def _fingerprint(body) -> str:
    """A stable hash of the request body, so a retry with other content is recognised."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
