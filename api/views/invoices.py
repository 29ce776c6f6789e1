"""GET /services/jobs/{id}/invoice/: a completed job's invoice as a PDF, for its customer and provider (and ops)."""
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from api.path_ids import path_id
from api.schema import ERROR
from dispatch import selectors
from dispatch.invoices import invoice_filename, invoice_pdf


class PDFRenderer(BaseRenderer):
    """Lets a client ask for `Accept: application/pdf`; the PDF itself bypasses rendering."""

    media_type = "application/pdf"
    format = "pdf"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class JobInvoiceView(APIView):
    renderer_classes = [JSONRenderer, PDFRenderer]

    @extend_schema(
        responses={(200, "application/pdf"): OpenApiTypes.BINARY, 409: ERROR},
        description="The invoice PDF once the job is COMPLETED (409 before); others than its customer, "
        "provider and ops get 404.",
    )
    def get(self, request, pk):
        invoice = selectors.invoice_for(request.user, path_id(pk))
        response = HttpResponse(invoice_pdf(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{invoice_filename(invoice)}"'
        return response

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response):
            # Errors are JSON whatever the client accepts.
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"
        return super().finalize_response(request, response, *args, **kwargs)
