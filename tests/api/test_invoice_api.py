"""GET /services/jobs/{id}/invoice/: a PDF with the job's figures, for its parties only, once COMPLETED."""
from decimal import Decimal
from io import BytesIO

import pytest
from pypdf import PdfReader

from dispatch.models import Invoice
from dispatch.services.lifecycle import job_complete, job_start
from dispatch.services.offers import offer_accept
from dispatch.services.wallet import wallet_topup
from tests.conftest import book

pytestmark = pytest.mark.django_db


def pdf_text(response) -> str:
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "application/pdf"
    return "\n".join(page.extract_text() for page in PdfReader(BytesIO(response.content)).pages)


def test_invoice_shows_number_parties_items_and_figures(completed_job, customer, provider, client_for):
    invoice = Invoice.objects.get(job=completed_job)

    response = client_for(customer).get(f"/services/jobs/{completed_job.pk}/invoice/")

    text = pdf_text(response)
    assert f'filename="{invoice.number}.pdf"' in response["Content-Disposition"]
    for expected in [
        invoice.number, "Akshay Kumar", "Raj Kumar", "Plumbing",
        "Tap leakage fix", "500.00", "Pipe replacement", "1200.00",
        "Total", "1700.00", "commission", "255.00", "Provider receives", "1445.00",
        "CASH", f"{invoice.issued_at:%Y-%m-%d}", f"{completed_job.created_at:%Y-%m-%d}",
    ]:
        assert expected in text, f"{expected!r} missing from:\n{text}"


def test_wallet_job_invoice_says_so(customer, category, provider, client_for):
    wallet_topup(user=customer, amount=Decimal("2000.00"), payment_token="tok_test")
    job = book(customer, category, provider, payment_method="WALLET")
    offer_accept(job_id=job.pk, provider=provider)
    job_start(job_id=job.pk, provider=provider)
    job_complete(job_id=job.pk, provider=provider)

    text = pdf_text(client_for(provider).get(f"/services/jobs/{job.pk}/invoice/", HTTP_ACCEPT="application/pdf"))

    assert "WALLET (paid from the customer's wallet)" in text


@pytest.mark.parametrize("who", ["customer", "provider", "ops"])
def test_parties_and_ops_get_the_invoice(completed_job, client_for, request, who):
    response = client_for(request.getfixturevalue(who)).get(f"/services/jobs/{completed_job.pk}/invoice/")

    assert pdf_text(response).startswith("Invoice INV-")


@pytest.mark.parametrize("who", ["other_customer", "other_provider"])
def test_strangers_get_404(completed_job, client_for, request, who):
    response = client_for(request.getfixturevalue(who)).get(
        f"/services/jobs/{completed_job.pk}/invoice/", HTTP_ACCEPT="application/pdf"
    )

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert "Raj" not in response.content.decode()


def test_anonymous_is_refused(completed_job, client_for):
    assert client_for(None).get(f"/services/jobs/{completed_job.pk}/invoice/").status_code in (401, 403)


@pytest.mark.parametrize("state", ["offered_job", "assigned_job", "in_progress_job"])
def test_invoice_before_completion_is_409(customer, client_for, request, state):
    job = request.getfixturevalue(state)

    response = client_for(customer).get(f"/services/jobs/{job.pk}/invoice/")

    assert response.status_code == 409
    assert "once it is COMPLETED" in response.json()["detail"]


@pytest.mark.parametrize("job_id", ["999999", "abc", "-1", "99999999999999999999999"])
def test_unknown_job_is_404(customer, client_for, job_id):
    assert client_for(customer).get(f"/services/jobs/{job_id}/invoice/").status_code == 404
