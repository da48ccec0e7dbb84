"""Signing secrets: generation and encryption at rest (Fernet)."""

from __future__ import annotations

import base64
import secrets as _secrets

from cryptography.fernet import Fernet, InvalidToken

SECRET_PREFIX = "whsec_"


def generate_secret(nbytes: int = 32) -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of random bytes (24-64 allowed, 32 by default)."""
    if not 24 <= nbytes <= 64:
        raise ValueError("a signing secret has 24 to 64 random bytes")
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(nbytes)).decode()


def secret_bytes(secret: str) -> bytes:
    """The HMAC key behind a `whsec_` secret."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def validate_key(key: str) -> None:
    try:
        Fernet(key.encode())
    except (ValueError, TypeError) as exc:
        raise ValueError("WEBHOOK_SECRETS_KEY must be a Fernet key (urlsafe base64 of 32 bytes)") from exc


class SecretBox:
    """Encrypts and decrypts signing secrets with the deployment's key."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("signing secret cannot be decrypted with WEBHOOK_SECRETS_KEY") from exc
