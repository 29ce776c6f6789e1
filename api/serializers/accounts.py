"""Sign-up, login and the user as clients see themselves."""
from django.contrib.auth.validators import UnicodeUsernameValidator
from rest_framework import serializers

from dispatch.models import AuthToken, User
from dispatch.services.accounts import SELF_SERVICE_ROLES

PHONE_REGEX = r"^\+?[0-9 ()-]{5,31}$"


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "role", "name", "phone"]
        read_only_fields = fields


class RegisterSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
    role = serializers.ChoiceField(choices=[(r.value, r.label) for r in SELF_SERVICE_ROLES])
    name = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")
    phone = serializers.RegexField(PHONE_REGEX, max_length=32, required=False, allow_blank=True)


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)


class AuthResponseSerializer(serializers.Serializer):
    token = serializers.CharField()
    user = UserSerializer()


class PasswordChangeSerializer(serializers.Serializer):
    old_password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
    new_password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)


class AuthTokenSerializer(serializers.ModelSerializer):
    """A token as its owner sees it in `GET /auth/tokens/`: never the key, which is shown only when issued."""

    current = serializers.SerializerMethodField(help_text="True for the token this request was made with.")

    class Meta:
        model = AuthToken
        fields = ["id", "label", "created_at", "last_used_at", "expires_at", "current"]
        read_only_fields = fields

    def get_current(self, token) -> bool:
        auth = self.context["request"].auth
        return isinstance(auth, AuthToken) and auth.pk == token.pk


class OpsAuthTokenSerializer(AuthTokenSerializer):
    """A token as ops see it in `GET /ops/tokens/`: whose it is, too."""

    user = serializers.IntegerField(source="user_id", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta(AuthTokenSerializer.Meta):
        fields = ["id", "user", "username", "label", "created_at", "last_used_at", "expires_at", "current"]
        read_only_fields = fields
