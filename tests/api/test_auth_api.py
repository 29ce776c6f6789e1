"""Sign-up and login answer a token the other routes accept."""
import pytest

from dispatch.models import ProviderProfile, Wallet

pytestmark = pytest.mark.django_db


def test_register_as_provider_creates_profile_and_token(client_for):
    response = client_for().post(
        "/auth/register/",
        {"username": "raj", "password": "tap-fixer-2026", "role": "provider", "name": "Raj Kumar", "phone": "+91 9000"},
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert body["user"]["role"] == "provider" and body["token"]
    assert ProviderProfile.objects.filter(user_id=body["user"]["id"]).exists()
    assert "password" not in body["user"]


@pytest.mark.parametrize("role", ["customer", "provider"])
def test_sign_up_opens_an_empty_wallet_of_the_role(client_for, role):
    response = client_for().post(
        "/auth/register/", {"username": "new-one", "password": "tap-fixer-2026", "role": role}, format="json"
    )

    wallet = Wallet.objects.get(user_id=response.json()["user"]["id"])
    assert (wallet.kind, wallet.balance) == (role, 0)


def test_login_token_authenticates_later_requests(client_for):
    client_for().post(
        "/auth/register/", {"username": "asha", "password": "leaky-tap-2026", "role": "customer"}, format="json"
    )
    login = client_for().post("/auth/login/", {"username": "asha", "password": "leaky-tap-2026"}, format="json")

    client = client_for()
    client.credentials(HTTP_AUTHORIZATION=f"Token {login.json()['token']}")
    assert login.status_code == 200
    assert client.get("/services/jobs/").status_code == 200


def test_wrong_password_is_refused_with_a_message(customer, client_for):
    response = client_for().post("/auth/login/", {"username": customer.username, "password": "nope"}, format="json")

    assert response.status_code == 400
    assert response.json()["detail"] == "Wrong username or password."


def test_anonymous_cannot_list_jobs(client_for):
    assert client_for().get("/services/jobs/").status_code == 401


def test_stored_password_is_hashed(client_for):
    from dispatch.models import User

    client_for().post("/auth/register/", {"username": "h", "password": "hashed-pass-77", "role": "customer"}, format="json")

    stored = User.objects.get(username="h").password
    assert "hashed-pass-77" not in stored and stored.startswith(("md5$", "pbkdf2_sha256$"))
