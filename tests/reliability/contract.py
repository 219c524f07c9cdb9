"""The error contract of issue 4, checked on any response: no 5xx for a client's input, and every
error body is exactly `{"error": "<non-empty message>"}` served as JSON."""

from __future__ import annotations

import json

import httpx


def contract_violation(
    status: int, content_type: str, body: bytes, *, expected: int | None = None
) -> str | None:
    """None when the response keeps the contract, else what is wrong with it. A 5xx (a model
    fault, overload) is part of the contract only where the caller expects that status."""
    if status >= 500 and status != expected:
        return f"status {status}: {body[:300]!r}"
    if status < 400:
        return None
    if not content_type.startswith("application/json"):
        return f"status {status} with content-type {content_type!r}: {body[:300]!r}"
    try:
        doc = json.loads(body)
    except ValueError:
        return f"status {status}: error body is not JSON: {body[:300]!r}"
    if not (isinstance(doc, dict) and list(doc) == ["error"] and isinstance(doc["error"], str)):
        return f"status {status}: error body is not {{'error': str}}: {body[:300]!r}"
    if not doc["error"].strip():
        return f"status {status}: empty error message"
    return None


def error_message(response: httpx.Response, status: int) -> str:
    """Asserts the status and the contract, returns the message."""
    assert response.status_code == status, f"{response.status_code}: {response.text[:500]}"
    problem = contract_violation(
        response.status_code,
        response.headers.get("content-type", ""),
        response.content,
        expected=status,
    )
    assert problem is None, problem
    message: str = response.json()["error"]
    return message
