"""A completed job's money documents as PDFs, for its customer and provider (and ops): GET /services/jobs/{id}/invoice/
and each refund's credit note, GET /services/jobs/{id}/credit_notes/{note}/; ops refund a job: POST
/ops/jobs/{id}/refunds/."""
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from api.headers import required_idempotency_key
from api.path_ids import path_id
from api.permissions import IsOps
from api.schema import ERROR
from api.serializers.refunds import CreditNoteSerializer, RefundSerializer
from dispatch import selectors
from dispatch.invoices import credit_note_filename, credit_note_pdf, invoice_filename, invoice_pdf
from dispatch.services.refunds import job_refund


class PDFRenderer(BaseRenderer):
    """Lets a client ask for `Accept: application/pdf`; the PDF itself bypasses rendering."""

    media_type = "application/pdf"
    format = "pdf"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class _PDFView(APIView):
    renderer_classes = [JSONRenderer, PDFRenderer]

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response):
            # Errors are JSON whatever the client accepts.
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"
        return super().finalize_response(request, response, *args, **kwargs)


def _pdf(content: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class JobInvoiceView(_PDFView):
    @extend_schema(
        responses={(200, "application/pdf"): OpenApiTypes.BINARY, 409: ERROR},
        description="The invoice PDF once the job is COMPLETED (409 before); others than its customer, "
        "provider and ops get 404.",
    )
    def get(self, request, pk):
        invoice = selectors.invoice_for(request.user, path_id(pk))
        return _pdf(invoice_pdf(invoice), invoice_filename(invoice))


class JobCreditNoteView(_PDFView):
    @extend_schema(
        parameters=[OpenApiParameter("note", int, OpenApiParameter.PATH)],
        responses={(200, "application/pdf"): OpenApiTypes.BINARY, 404: ERROR, 409: ERROR},
        description="A refund's credit note as a PDF, for the job's customer, provider and ops (others: 404).",
    )
    def get(self, request, pk, note):
        credit_note, invoice = selectors.credit_note_for(request.user, path_id(pk), path_id(note))
        return _pdf(credit_note_pdf(credit_note, invoice), credit_note_filename(credit_note))


class OpsRefundView(APIView):
    permission_classes = [IsOps]

    @extend_schema(
        request=RefundSerializer,
        responses={201: CreditNoteSerializer, 200: CreditNoteSerializer, 400: ERROR, 404: ERROR, 409: ERROR, 422: ERROR},
        parameters=[
            OpenApiParameter("id", int, OpenApiParameter.PATH),
            OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=True,
                             description="The same key answers the first refund (200): a retry refunds once."),
        ],
        description="Refund a COMPLETED job, all that is left of it or `amount`: the provider gives it to the "
        "customer's wallet, the platform gives back its commission on it; a credit note is issued and both are told.",
    )
    def post(self, request, pk):
        data = RefundSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = required_idempotency_key(request, what="refund")
        note, created = job_refund(job_id=path_id(pk), actor=request.user, key=key, **data.validated_data)
        return Response(CreditNoteSerializer(note).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
