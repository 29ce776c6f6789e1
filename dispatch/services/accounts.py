"""Sign-up, passwords and tokens: each login gets its own token, and every token ends.

A token ends when its client logs out, when its user or ops revokes it, when the password
changes (all of the user's tokens), when the user is deactivated (all), or when it has not
been used for AUTH_TOKEN_TTL_DAYS (expiry slides forward with use). Whatever ends a token
also closes the sockets it opened, after commit (`push.sockets_close`, code 4401).
"""
import re
import secrets
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from dispatch.errors import Invalid, NotFound
from dispatch.models import AuthToken, ProviderProfile, Role, User
from dispatch.models.tokens import token_digest
from dispatch.prepared import Prepared
from dispatch.realtime import push
from dispatch.services.wallet import wallets_open

SELF_SERVICE_ROLES = (Role.CUSTOMER, Role.PROVIDER)
# What a key looks like (40 hex digits, as DRF's were); anything else is nobody, without a lookup
# (a NUL byte, which PostgreSQL refuses in text, would otherwise be a 500).
TOKEN_KEY_SHAPE = re.compile(r"[0-9a-f]{40}")
# A token's last use (and so its sliding expiry) is written at most this often: not a write per request.
TOKEN_TOUCH_S = 60
# Ids per IN list when checking many at once (SQLite caps a statement's parameters).
ID_CHUNK = 1000
MAX_LABEL_CHARS = 200


def user_register(*, username: str, password: str, role: str, name: str = "", phone: str = "") -> User:
    """Create a customer or provider (ops accounts are made by staff, not by sign-up)."""
    if role not in SELF_SERVICE_ROLES:
        raise Invalid(f"role must be one of {', '.join(SELF_SERVICE_ROLES)}.", field="role")
    candidate = User(username=username, role=role, name=name, phone=phone)
    try:
        validate_password(password, user=candidate)
    except DjangoValidationError as exc:
        raise Invalid(" ".join(exc.messages), field="password") from exc
    try:
        with transaction.atomic():
            user = User.objects.create_user(username=username, password=password, role=role, name=name, phone=phone)
            if role == Role.PROVIDER:
                ProviderProfile.objects.create(user=user)
            wallets_open([user])
    except IntegrityError as exc:
        raise Invalid("A user with that username already exists.", field="username") from exc
    return user


def _ttl() -> timedelta:
    return timedelta(days=settings.AUTH_TOKEN_TTL_DAYS)


def token_issue(*, user: User, label: str = "") -> tuple[AuthToken, str]:
    """A new token for `user`; returns the row and its key, which exists nowhere else (only its digest is stored).

    Beyond AUTH_TOKENS_PER_USER live tokens the least recently used are revoked, and rows that
    ended more than a TTL ago are deleted, so a script logging in in a loop grows nothing.
    """
    key = secrets.token_hex(20)
    now = timezone.now()
    with transaction.atomic():
        token = AuthToken.objects.create(
            user=user, key_digest=token_digest(key), label=_printable(label)[:MAX_LABEL_CHARS], created_at=now,
            last_used_at=now, expires_at=now + _ttl(),
        )
        live = _live(AuthToken.objects.filter(user=user), now).order_by("-last_used_at", "-pk")
        surplus = list(live.values_list("pk", flat=True)[settings.AUTH_TOKENS_PER_USER:])
        if surplus:
            AuthToken.objects.filter(pk__in=surplus).update(revoked_at=now)
            transaction.on_commit(partial(push.sockets_close, user_id=user.pk, token_ids=surplus))
        AuthToken.objects.filter(_long_ended(now), user=user).delete()
    return token, key


def _long_ended(now) -> Q:
    return Q(revoked_at__lt=now - _ttl()) | Q(expires_at__lt=now - _ttl())


def tokens_purge(*, batch: int = 5000) -> int:
    """Delete every token that ended more than a TTL ago (daily, `ops.purge_tokens`); returns how many.

    Logging in purges the user's own; this catches users who never come back. In batches, so a
    large backlog never holds one long lock on the table.
    """
    now, purged = timezone.now(), 0
    while True:
        ids = list(AuthToken.objects.filter(_long_ended(now)).values_list("pk", flat=True)[:batch])
        if not ids:
            return purged
        purged += AuthToken.objects.filter(pk__in=ids).delete()[0]


def _printable(text: str) -> str:
    """A client-sent label (its User-Agent) without control characters or lone surrogates, which a text column refuses."""
    return "".join(ch for ch in text if ch.isprintable() and not 0xD800 <= ord(ch) <= 0xDFFF)


def _live(tokens, now):
    return tokens.filter(revoked_at__isnull=True, expires_at__gt=now)


# Every request but a sign-in reads its token: prepared (dispatch/prepared.py), ~1 ms of CPU less a request
# (`python -m bench.hotpath`, every request row, paired against the ORM-built read).
_TOKEN_BY_DIGEST = Prepared(
    lambda digest, now: _live(AuthToken.objects.select_related("user"), now).filter(key_digest=digest).order_by()[:1],
    digest=str, now=datetime,
)


def token_authenticate(*, key: str | None) -> AuthToken | None:
    """The live token with this key, of an active user, with its user loaded; None when there is none.

    Each use slides the expiry to AUTH_TOKEN_TTL_DAYS from now, written at most once per
    TOKEN_TOUCH_S per token (the row is only updated when it is due).
    """
    if not key or not TOKEN_KEY_SHAPE.fullmatch(key):
        return None
    now = timezone.now()
    token = _TOKEN_BY_DIGEST.first(digest=token_digest(key), now=now)
    if token is None or not token.user.is_active:
        return None
    if token.last_used_at is None or now - token.last_used_at >= timedelta(seconds=TOKEN_TOUCH_S):
        token.last_used_at, token.expires_at = now, now + _ttl()
        _live(AuthToken.objects.filter(pk=token.pk), now).update(last_used_at=now, expires_at=token.expires_at)
    return token


def token_is_live(*, token_id: int, user_id: int) -> bool:
    """Whether the token still lets its (active) user in; for a socket checking the token it was opened with."""
    return _live(AuthToken.objects.filter(pk=token_id, user_id=user_id, user__is_active=True), timezone.now()).exists()


def credentials_live(*, token_ids: set[int], user_ids: set[int]) -> tuple[set[tuple[int, int]], set[int]]:
    """Which of these still let someone in: (token id, user id) of live tokens of active users, and active user ids.

    For the sockets of one server process, re-checked together (dispatch/realtime/credential_watch.py).
    """
    now, tokens, users = timezone.now(), set(), set()
    token_ids, user_ids = sorted(token_ids), sorted(user_ids)
    for start in range(0, len(token_ids), ID_CHUNK):
        live = _live(AuthToken.objects.filter(pk__in=token_ids[start:start + ID_CHUNK], user__is_active=True), now)
        tokens.update(live.values_list("pk", "user_id"))
    for start in range(0, len(user_ids), ID_CHUNK):
        users.update(User.objects.filter(pk__in=user_ids[start:start + ID_CHUNK], is_active=True)
                     .values_list("pk", flat=True))
    return tokens, users


def token_revoke(*, token_id: int, owner: User | None) -> AuthToken:
    """End one token now: `owner`'s own (another's is NotFound, as one that does not exist), or any user's for None (ops).

    Revoking an ended token again is NotFound too. Its sockets are closed (4401) after commit.
    """
    with transaction.atomic():
        tokens = AuthToken.objects.select_for_update().filter(pk=token_id, revoked_at__isnull=True)
        token = (tokens.filter(user=owner) if owner is not None else tokens).first()
        if token is None:
            raise NotFound("No such token.")
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        transaction.on_commit(partial(push.sockets_close, user_id=token.user_id, token_ids=[token.pk]))
    return token


def _revoke_all(user: User, now) -> None:
    AuthToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=now)


def password_change(*, user: User, old_password: str, new_password: str, label: str = "") -> tuple[AuthToken, str]:
    """Set a new password, end every token of the user and answer a fresh one (row and key).

    Every socket of the user closes (4401) after commit, whatever opened it; the new token has none yet.
    """
    if not user.check_password(old_password):
        raise Invalid("The old password is wrong.", field="old_password")
    try:
        validate_password(new_password, user=user)
    except DjangoValidationError as exc:
        raise Invalid(" ".join(exc.messages), field="new_password") from exc
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        _revoke_all(user, timezone.now())
        token, key = token_issue(user=user, label=label)
        transaction.on_commit(partial(push.sockets_close, user_id=user.pk, keep_token_id=token.pk))
    return token, key


def user_deactivate(*, user: User) -> User:
    """Lock the user out: inactive, every token ended, every open socket closed (4401) after commit."""
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(is_active=False)
        user.is_active = False
        _revoke_all(user, timezone.now())
        transaction.on_commit(partial(push.sockets_close, user_id=user.pk))
    return user
