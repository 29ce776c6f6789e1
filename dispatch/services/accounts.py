"""Sign-up and tokens."""
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from rest_framework.authtoken.models import Token

from dispatch.errors import Invalid
from dispatch.models import ProviderProfile, Role, User

SELF_SERVICE_ROLES = (Role.CUSTOMER, Role.PROVIDER)


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
    except IntegrityError as exc:
        raise Invalid("A user with that username already exists.", field="username") from exc
    return user


def auth_token_for(*, user: User) -> str:
    token, _ = Token.objects.get_or_create(user=user)
    return token.key
