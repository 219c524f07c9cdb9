"""Bearer tokens: API keys for inference, the admin token for the repository API.

Compared with `hmac.compare_digest` (constant time); tokens are never logged or echoed.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from pydantic import SecretStr

from service.errors import ForbiddenError, UnauthorizedError


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def check_token(authorization: str | None, accepted: Sequence[SecretStr], what: str) -> None:
    """401 without a bearer token, 403 with a wrong one; every accepted token is compared."""
    token = bearer(authorization)
    if token is None:
        raise UnauthorizedError(f"{what} needs an 'Authorization: Bearer <token>' header")
    given = token.encode()
    matched = False
    for secret in accepted:
        matched |= hmac.compare_digest(given, secret.get_secret_value().encode())
    if not matched:
        raise ForbiddenError(f"the bearer token is not valid for {what}")
