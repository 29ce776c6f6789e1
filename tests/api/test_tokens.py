"""Tokens that end: each login its own token; logout, revocation, password change, deactivation and expiry end them.

Every client here authenticates with a real `Authorization: Token` header, as apps do.
"""
import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from config.celery import app as celery_app
from dispatch.models import AuthToken
from dispatch.services.accounts import TOKEN_TOUCH_S, token_revoke, tokens_purge, user_deactivate

pytestmark = pytest.mark.django_db

PASSWORD = "pass-word-123"  # tests.factories.UserFactory's


def with_token(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def login(user, *, agent: str = "tests") -> str:
    response = APIClient().post(
        "/auth/login/", {"username": user.username, "password": PASSWORD}, format="json", HTTP_USER_AGENT=agent
    )
    assert response.status_code == 200, response.content
    return response.json()["token"]


def works(key: str) -> bool:
    status = with_token(key).get("/services/jobs/").status_code
    assert status in (200, 401), status
    return status == 200


def test_logout_ends_the_token_it_was_sent_with(customer):
    key = login(customer)

    assert with_token(key).post("/auth/logout/").status_code == 204

    assert not works(key)
    assert with_token(key).post("/auth/logout/").status_code == 401


def test_two_logins_give_two_tokens_that_both_work(customer):
    phone, laptop = login(customer, agent="phone"), login(customer, agent="laptop")

    assert phone != laptop
    assert works(phone) and works(laptop)


def test_logout_leaves_the_users_other_logins_working(customer):
    phone, laptop = login(customer), login(customer)

    with_token(phone).post("/auth/logout/")

    assert not works(phone) and works(laptop)


def test_register_answers_a_working_token():
    response = APIClient().post(
        "/auth/register/", {"username": "nia", "password": "tap-fixer-2026", "role": "customer"}, format="json"
    )

    assert works(response.json()["token"])


def test_keys_are_stored_only_as_digests(customer):
    key = login(customer)

    assert not AuthToken.objects.filter(key_digest=key).exists()
    assert AuthToken.objects.filter(user=customer).count() == 1


def test_password_change_ends_every_old_token_and_answers_a_new_one(customer):
    phone, laptop = login(customer), login(customer)

    response = with_token(phone).post(
        "/auth/password/", {"old_password": PASSWORD, "new_password": "a-new-pass-456"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["user"]["id"] == customer.pk
    fresh = response.json()["token"]
    assert not works(phone) and not works(laptop) and works(fresh)
    assert APIClient().post("/auth/login/", {"username": customer.username, "password": "a-new-pass-456"},
                            format="json").status_code == 200


def test_password_change_with_a_wrong_old_password_changes_nothing(customer):
    key = login(customer)

    response = with_token(key).post(
        "/auth/password/", {"old_password": "not-it", "new_password": "a-new-pass-456"}, format="json"
    )

    assert response.status_code == 400
    assert "old_password" in response.json()
    assert works(key)
    customer.refresh_from_db()
    assert customer.check_password(PASSWORD)


def test_password_change_refuses_a_weak_new_password(customer):
    key = login(customer)

    response = with_token(key).post("/auth/password/", {"old_password": PASSWORD, "new_password": "123"}, format="json")

    assert response.status_code == 400 and "new_password" in response.json()
    assert works(key)


def test_a_token_unused_for_the_ttl_expires(customer, clock, settings):
    settings.AUTH_TOKEN_TTL_DAYS = 30
    key = login(customer)

    clock.tick(timedelta(days=30, seconds=1))

    assert not works(key)


def test_each_use_slides_the_expiry(customer, clock, settings):
    settings.AUTH_TOKEN_TTL_DAYS = 30
    key = login(customer)

    clock.tick(timedelta(days=20))
    assert works(key)  # slides the expiry to day 50
    clock.tick(timedelta(days=20))
    assert works(key)  # day 40: past the first expiry, still in
    clock.tick(timedelta(days=30, seconds=1))

    assert not works(key)


def test_last_use_is_written_at_most_once_a_minute(customer, clock):
    key = login(customer)
    clock.tick(TOKEN_TOUCH_S)
    assert works(key)
    token = AuthToken.objects.get(user=customer)
    touched = token.last_used_at

    clock.tick(TOKEN_TOUCH_S - 1)
    assert works(key)

    token.refresh_from_db()
    assert token.last_used_at == touched
    clock.tick(1)
    assert works(key)
    token.refresh_from_db()
    assert token.last_used_at > touched


def test_the_user_lists_their_live_tokens_without_keys(customer, other_customer):
    phone, laptop = login(customer, agent="Phone app"), login(customer, agent="Firefox")
    login(other_customer)
    with_token(laptop).post("/auth/logout/")

    response = with_token(phone).get("/auth/tokens/")

    assert response.status_code == 200
    [listed] = response.json()
    assert listed["label"] == "Phone app" and listed["current"] is True
    assert set(listed) == {"id", "label", "created_at", "last_used_at", "expires_at", "current"}
    assert phone not in response.content.decode()


def test_the_user_revokes_one_of_their_tokens(customer):
    phone, laptop = login(customer, agent="Phone app"), login(customer, agent="Lost laptop")
    lost = AuthToken.objects.get(label="Lost laptop")

    response = with_token(phone).delete(f"/auth/tokens/{lost.pk}/")

    assert response.status_code == 204
    assert not works(laptop) and works(phone)
    assert with_token(phone).delete(f"/auth/tokens/{lost.pk}/").status_code == 404


def test_nobody_revokes_another_users_token(customer, other_customer, provider):
    victim = login(customer)
    victims_token = AuthToken.objects.get(user=customer)

    for stranger in (other_customer, provider):
        response = with_token(login(stranger)).delete(f"/auth/tokens/{victims_token.pk}/")
        assert response.status_code == 404

    assert works(victim)


def test_ops_list_and_revoke_any_users_tokens(customer, ops):
    key = login(customer, agent="Stolen phone")
    ops_key = login(ops)

    listed = with_token(ops_key).get(f"/ops/tokens/?user={customer.pk}").json()["results"]
    assert [(t["user"], t["username"], t["label"]) for t in listed] == [(customer.pk, customer.username, "Stolen phone")]
    response = with_token(ops_key).delete(f"/ops/tokens/{listed[0]['id']}/")

    assert response.status_code == 204
    assert not works(key)


def test_only_ops_use_the_ops_token_routes(customer, other_customer):
    key = login(customer)
    others = AuthToken.objects.get(user=customer)

    client = with_token(login(other_customer))
    assert client.get("/ops/tokens/").status_code == 403
    assert client.delete(f"/ops/tokens/{others.pk}/").status_code == 403
    assert works(key)


def test_a_deactivated_users_tokens_stop_working(customer):
    key = login(customer)

    user_deactivate(user=customer)

    assert not works(key)
    assert not AuthToken.objects.filter(user=customer, revoked_at__isnull=True).exists()


def test_an_inactive_user_is_refused_even_with_a_live_token(customer):
    key = login(customer)

    type(customer).objects.filter(pk=customer.pk).update(is_active=False)  # e.g. a bulk update, not the service

    assert not works(key)


def test_logins_past_the_cap_end_the_least_recently_used(customer, settings, clock):
    settings.AUTH_TOKENS_PER_USER = 2
    oldest = login(customer)
    clock.tick(TOKEN_TOUCH_S)
    middle = login(customer)
    clock.tick(TOKEN_TOUCH_S)

    newest = login(customer)

    assert not works(oldest) and works(middle) and works(newest)


def test_the_daily_purge_deletes_tokens_ended_more_than_a_ttl_ago(customer, other_customer, settings, clock):
    settings.AUTH_TOKEN_TTL_DAYS = 30
    login(customer)  # will expire unused
    revoked = AuthToken.objects.get(user=customer)
    token_revoke(token_id=revoked.pk, owner=customer)
    login(other_customer)  # will expire unused, and is never followed by another login
    clock.tick(timedelta(days=30, hours=1).total_seconds())
    recent = login(customer)
    kept = set(AuthToken.objects.values_list("pk", flat=True))
    clock.tick(timedelta(days=30).total_seconds())  # everything but `recent` ended over a TTL ago

    purged = tokens_purge(batch=1)

    assert purged == len(kept) - 1
    assert list(AuthToken.objects.values_list("user_id", flat=True)) == [customer.pk]
    assert not works(recent)  # ended, but within a TTL: kept, listed as ended, not yet purged
    assert settings.CELERY_BEAT_SCHEDULE["ops.purge_tokens"]["schedule"] == 86400.0
    assert celery_app.conf.task_routes["ops.purge_tokens"] == {"queue": "housekeeping"}


def test_a_malformed_token_is_a_401_not_a_500():
    for key in ("short", "\x00" * 40, "g" * 40):
        assert APIClient(HTTP_AUTHORIZATION=f"Token {key}").get("/services/jobs/").status_code == 401


def test_drf_tokens_from_before_keep_working_after_the_migration(customer):
    """dispatch/migrations/0008 carries each DRF token over as a digest and deletes the plain key."""
    old_key = Token.objects.create(user=customer).key
    migration = importlib.import_module("dispatch.migrations.0008_auth_tokens")

    migration.carry_over_drf_tokens(apps, None)

    assert works(old_key)
    assert not Token.objects.exists()


def test_the_admin_deactivating_a_user_ends_their_tokens(customer, client):
    from tests.factories import OpsFactory

    key = login(customer)
    admin = OpsFactory(is_superuser=True)
    client.force_login(admin)
    page = client.get(f"/admin/dispatch/user/{customer.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "is_active"}
    data.update({"date_joined_0": customer.date_joined.strftime("%Y-%m-%d"),
                 "date_joined_1": customer.date_joined.strftime("%H:%M:%S"), "groups": [], "user_permissions": []})

    response = client.post(f"/admin/dispatch/user/{customer.pk}/change/", data)

    assert response.status_code == 302, response.content[:2000]
    assert not works(key)


def test_many_sockets_credentials_are_checked_a_thousand_ids_per_query(customer, other_customer,
                                                                       django_assert_num_queries):
    from dispatch.services.accounts import credentials_live, token_issue

    live = {token_issue(user=customer)[0].pk for _ in range(3)}
    revoked = token_issue(user=customer)[0]
    token_revoke(token_id=revoked.pk, owner=None)
    other_customer.is_active = False
    other_customer.save(update_fields=["is_active"])
    asked = live | {revoked.pk} | set(range(10**6, 10**6 + 1500))  # ids of no token

    with django_assert_num_queries(3):  # 1,504 token ids: two queries; one user id: one
        tokens, users = credentials_live(token_ids=asked, user_ids={customer.pk, other_customer.pk})

    assert tokens == {(pk, customer.pk) for pk in live}
    assert users == {customer.pk}
