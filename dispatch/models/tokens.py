"""Sign-in tokens: one per login (or sign-up, or password change), each ending by logout, revocation or expiry.

Only a digest of each key is stored; the key itself is shown once, when it is issued.
The rules (sliding expiry, revocation, closing sockets) are in dispatch/services/accounts.py.
"""
import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone


def token_digest(key: str) -> str:
    """What is stored for a key: its SHA-256. Keys are 160 random bits, so no salt or slow hash is needed."""
    return hashlib.sha256(key.encode()).hexdigest()


class AuthToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="auth_tokens")
    key_digest = models.CharField(max_length=64, unique=True)
    label = models.CharField(max_length=200, blank=True, help_text="The client's User-Agent when it was issued.")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "expires_at"], name="auth_token_user_expiry")]

    def __str__(self) -> str:
        return f"token {self.pk} of user {self.user_id}"

    def is_live(self, now=None) -> bool:
        return self.revoked_at is None and self.expires_at > (now or timezone.now())
