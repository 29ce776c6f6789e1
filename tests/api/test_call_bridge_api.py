"""Masked numbers over HTTP: POST /services/jobs/{id}/call_bridge/, the job's `contact`, and the telephony
provider's routing webhook POST /telephony/route/ (signed; every bad request a clear 4xx, never a 500)."""
import json
import time

import pytest
from rest_framework.test import APIClient

from dispatch.services.lifecycle import job_complete
from dispatch.services.webhooks import signature
from dispatch.telephony import SIGNATURE_HEADER

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("telephony")]


def bridge(client, job_id):
    return client.post(f"/services/jobs/{job_id}/call_bridge/")


def test_a_party_gets_a_masked_number_and_the_same_one_again(assigned_job, customer, provider, client_for):
    first = bridge(client_for(customer), assigned_job.pk)
    again = bridge(client_for(customer), assigned_job.pk)

    assert first.status_code == 200, first.content
    assert first.json() == again.json()
    assert first.json()["masked"] is True and first.json()["expires"] is None
    assert provider.phone not in first.content.decode()


@pytest.mark.parametrize("who, status", [("other_customer", 404), ("other_provider", 404), ("ops", 404),
                                         (None, 401)])
def test_nobody_else_gets_a_number(request, who, status, assigned_job, client_for):
    user = request.getfixturevalue(who) if who else None

    response = bridge(client_for(user), assigned_job.pk)

    assert response.status_code == status
    assert "number" not in response.json()


@pytest.mark.parametrize("job_id", ["abc", "0", "-3", "99999999999999999999999", "987654321"])
def test_an_id_that_names_nothing_is_404(job_id, customer, client_for):
    response = bridge(client_for(customer), job_id)

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_a_finished_job_has_no_number_to_call(completed_job, customer, client_for):
    response = bridge(client_for(customer), completed_job.pk)

    assert response.status_code == 409
    assert response.json()["code"] == "conflict" and "ASSIGNED or IN_PROGRESS" in response.json()["detail"]


def test_only_post_is_served(assigned_job, customer, client_for):
    assert client_for(customer).get(f"/services/jobs/{assigned_job.pk}/call_bridge/").status_code == 405


def test_a_provider_outage_is_503_with_retry_after(assigned_job, customer, client_for, telephony):
    telephony.down = True

    response = bridge(client_for(customer), assigned_job.pk)

    assert response.status_code == 503
    assert response.json()["code"] == "overloaded" and response["Retry-After"] == "5"


def test_masking_off_answers_the_real_number_unmasked(assigned_job, customer, provider, client_for, settings):
    settings.PHONE_MASKING = False

    response = bridge(client_for(customer), assigned_job.pk)

    assert response.json() == {"number": provider.phone, "expires": None, "masked": False}


# --- the job says how to call ---------------------------------------------------------------


def test_a_live_masked_job_offers_in_app_and_bridge_calls_and_no_phone(
    in_progress_job, customer, provider, client_for
):
    seen = client_for(customer).get(f"/services/jobs/{in_progress_job.pk}/").json()

    assert seen["provider"]["phone"] is None
    assert seen["contact"] == {"masked": True, "in_app": True,
                               "bridge": f"/services/jobs/{in_progress_job.pk}/call_bridge/"}


def test_a_finished_job_offers_no_call_masked_or_not(in_progress_job, customer, provider, client_for, settings):
    job_complete(job_id=in_progress_job.pk, provider=provider)
    for masking in (True, False):
        settings.PHONE_MASKING = masking

        seen = client_for(provider).get(f"/services/jobs/{in_progress_job.pk}/").json()

        assert seen["customer"]["phone"] is None
        assert seen["contact"] == {"masked": masking, "in_app": False, "bridge": None}


def test_unmasked_a_live_job_shows_the_real_number_and_no_bridge(assigned_job, customer, client_for, settings):
    settings.PHONE_MASKING = False

    seen = client_for(assigned_job.provider).get(f"/services/jobs/{assigned_job.pk}/").json()

    assert seen["customer"]["phone"] == customer.phone
    assert seen["contact"] == {"masked": False, "in_app": True, "bridge": None}


def test_ops_see_real_numbers_and_no_call_of_their_own(assigned_job, customer, provider, ops, client_for):
    seen = client_for(ops).get(f"/services/jobs/{assigned_job.pk}/").json()

    assert (seen["customer"]["phone"], seen["provider"]["phone"]) == (customer.phone, provider.phone)
    assert seen["contact"] == {"masked": False, "in_app": False, "bridge": None}


# --- the provider's routing webhook ---------------------------------------------------------


def test_the_webhook_connects_a_party_to_the_other_real_number(assigned_job, customer, provider, telephony, client_for):
    number = bridge(client_for(customer), assigned_job.pk).json()["number"]

    response = telephony.ring(APIClient(), number=number, caller=customer.phone)

    assert response.status_code == 200
    assert response.json() == {"connect_to": provider.phone, "reason": "connect"}


def test_the_webhook_connects_nobody_once_the_job_is_done(in_progress_job, customer, provider, telephony, client_for):
    number = bridge(client_for(customer), in_progress_job.pk).json()["number"]
    job_complete(job_id=in_progress_job.pk, provider=provider)

    response = telephony.ring(APIClient(), number=number, caller=customer.phone)

    assert response.status_code == 200
    assert response.json() == {"connect_to": None, "reason": "job_closed"}


def test_the_webhook_connects_no_stranger(assigned_job, customer, other_customer, telephony, client_for):
    number = bridge(client_for(customer), assigned_job.pk).json()["number"]

    response = telephony.ring(APIClient(), number=number, caller=other_customer.phone)

    assert response.json() == {"connect_to": None, "reason": "not_a_participant"}


def _signed(body: bytes, secret="test-telephony-secret", at=None) -> dict:
    return {SIGNATURE_HEADER: signature(secret, body, int(time.time() if at is None else at))}


BODY = json.dumps({"number": "+12345550100", "caller": "+91 90000 00001"}).encode()


@pytest.mark.parametrize("headers", [
    {},
    {SIGNATURE_HEADER: "t=1,v1=00"},
    {SIGNATURE_HEADER: "garbage"},
    _signed(BODY, secret="not-the-secret"),
    _signed(BODY, at=time.time() - 3600),  # a replay an hour later
], ids=["unsigned", "wrong", "garbage", "other-secret", "stale"])
def test_the_webhook_refuses_what_the_provider_did_not_sign(headers, assigned_job, customer):
    response = APIClient().generic("POST", "/telephony/route/", BODY, content_type="application/json",
                                   headers=headers)

    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


def test_the_webhook_refuses_everything_without_a_secret(settings, assigned_job):
    settings.TELEPHONY_WEBHOOK_SECRET = ""

    response = APIClient().generic("POST", "/telephony/route/", BODY, content_type="application/json",
                                   headers=_signed(BODY, secret=""))

    assert response.status_code == 403


@pytest.mark.parametrize("body", [
    b"not json", b"[1, 2]", b"{}", json.dumps({"number": "+12345550100"}).encode(),
    json.dumps({"number": 12345, "caller": "+91 90000 00001"}).encode(),
    json.dumps({"number": "+1" + "2" * 200, "caller": "+91 90000 00001"}).encode(),
    json.dumps({"number": "no digits", "caller": "+91 90000 00001"}).encode(),
    json.dumps({"number": "+12345550100", "caller": "anonymous"}).encode(),
    json.dumps({"number": "+12345550100", "caller": "+9190000", "call_ref": ["x"]}).encode(),
], ids=["text", "list", "empty", "no-caller", "number-not-text", "too-long", "no-digits", "caller-no-digits",
        "call-ref-list"])
def test_the_webhook_answers_nonsense_with_a_400(body):
    response = APIClient().generic("POST", "/telephony/route/", body, content_type="application/json",
                                   headers=_signed(body))

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"


def test_the_webhook_takes_only_post():
    assert APIClient().get("/telephony/route/").status_code == 405
