"""Refunds: ops give back a completed job's money in full or in part, once per key, with a credit note PDF."""
import io
from decimal import Decimal

import pytest
from pypdf import PdfReader

from dispatch.models import CreditNote, Event, JobStatus, Transfer, TransferKind, WalletKind
from dispatch.services.wallet import ledger_audit, system_wallet, wallet_of, wallet_topup
from tests.conftest import book
from tests.dispatch.test_wallet import run_to

pytestmark = pytest.mark.django_db

TOTAL, COMMISSION = Decimal("1700.00"), Decimal("255.00")


@pytest.fixture(autouse=True)
def _ledger_stays_balanced(db):
    yield
    assert ledger_audit() == []


@pytest.fixture
def paid_job(customer, category, provider):
    wallet_topup(user=customer, amount=Decimal("2000.00"), payment_token="tok_test")
    return run_to(book(customer, category, provider, payment_method="WALLET"), provider, JobStatus.COMPLETED)


def refund(client, job_id, key="r-1", **body):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(f"/ops/jobs/{job_id}/refunds/", {"reason": "Leak came back", **body}, format="json", **headers)


def test_a_part_refund_moves_the_money_back_and_issues_a_credit_note(paid_job, customer, provider, ops, client_for):
    response = refund(client_for(ops), paid_job.pk, amount="500.00")

    assert response.status_code == 201
    note = response.json()
    assert (note["amount"], note["commission"], note["number"].startswith("CN-")) == ("500.00", "75.00", True)
    assert wallet_of(customer).balance == Decimal("300.00") + Decimal("500.00")
    assert wallet_of(provider).balance == TOTAL - COMMISSION - Decimal("500.00") + Decimal("75.00")
    assert system_wallet(WalletKind.PLATFORM).balance == COMMISSION - Decimal("75.00")
    assert Transfer.objects.get(kind=TransferKind.REFUND).created_by == ops
    told = Event.objects.filter(name="JOB_REFUNDED", job=paid_job)
    assert sorted(e.user_id for e in told) == sorted([customer.pk, provider.pk])
    assert "Leak came back" in told.first().payload["message"]


def test_a_retry_refunds_once_and_refunds_never_pass_the_total(paid_job, ops, client_for):
    client = client_for(ops)

    first = refund(client, paid_job.pk, amount="1000.00")
    again = refund(client, paid_job.pk, amount="1000.00")
    too_much = refund(client, paid_job.pk, key="r-2", amount="800.00")
    rest = refund(client, paid_job.pk, key="r-3")
    nothing_left = refund(client, paid_job.pk, key="r-4")

    assert (first.status_code, again.status_code) == (201, 200) and again.json()["id"] == first.json()["id"]
    assert too_much.status_code == 400 and "Only 700.00" in too_much.json()["detail"]
    assert rest.status_code == 201 and rest.json()["amount"] == "700.00"
    assert nothing_left.status_code == 409
    assert sum(n.commission for n in CreditNote.objects.all()) == COMMISSION
    assert refund(client, paid_job.pk, amount="5.00").status_code == 422  # r-1 again, another amount


def test_the_parties_download_the_credit_note_and_the_invoice_shows_it(paid_job, customer, provider, other_customer,
                                                                        ops, client_for):
    note = refund(client_for(ops), paid_job.pk, amount="500.00").json()

    for user in (customer, provider, ops):
        pdf = client_for(user).get(note["pdf"])
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert client_for(other_customer).get(note["pdf"]).status_code == 404
    assert client_for(customer).get(f"/services/jobs/{paid_job.pk}/credit_notes/987654/").status_code == 404
    invoice = client_for(customer).get(f"/services/jobs/{paid_job.pk}/invoice/")
    assert invoice.status_code == 200 and invoice.content.startswith(b"%PDF")


def test_the_invoice_lists_its_refunds(paid_job, ops, client_for):
    note = refund(client_for(ops), paid_job.pk, amount="500.00").json()
    text = PdfReader(io.BytesIO(client_for(ops).get(f"/services/jobs/{paid_job.pk}/invoice/").content)).pages[0] \
        .extract_text()

    assert note["number"] in text and "-500.00" in text and "1200.00" in text


@pytest.mark.parametrize(
    ("key", "body", "status"),
    [
        (None, {}, 400),  # no Idempotency-Key
        ("k", {"reason": " "}, 400),
        ("k", {"amount": "0"}, 400),
        ("k", {"amount": "1.001"}, 400),
        ("k", {"amount": "5000.00"}, 400),
    ],
)
def test_bad_refunds_are_refused_and_move_nothing(paid_job, ops, client_for, key, body, status):
    assert refund(client_for(ops), paid_job.pk, key=key, **body).status_code == status
    assert not CreditNote.objects.exists()


def test_only_ops_refund_and_only_completed_jobs(paid_job, assigned_job, customer, provider, ops, client_for):
    for user in (customer, provider):
        assert refund(client_for(user), paid_job.pk).status_code == 403
    assert refund(client_for(ops), assigned_job.pk).status_code == 409
    assert refund(client_for(ops), 987654).status_code == 404
    assert not CreditNote.objects.exists()
