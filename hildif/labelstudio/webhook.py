"""The per-project secret that lets Label Studio's webhooks through a backend protected by basic auth.

Label Studio creates the ML backend's project webhook (``<backend>/webhook``) without the backend's credentials, so
with basic auth on every annotation event would be refused. When hildif connects a backend with credentials it adds
a header to that webhook: ``X-Hildif-Webhook-Secret: <secret>``, where the secret is an HMAC-SHA256 of the project id
under the backend password. The backend recomputes it for the project named in the payload and compares in constant
time; a leaked webhook secret admits webhooks for that one project only, never the other endpoints.
"""

from __future__ import annotations

import hashlib
import hmac

WEBHOOK_SECRET_HEADER = "X-Hildif-Webhook-Secret"


def webhook_secret(password: str, project_id: int) -> str:
    """The secret for ``project_id``'s webhook, derived from the backend password (64 hex characters)."""
    return hmac.new(password.encode("utf-8"), f"hildif-webhook:{int(project_id)}".encode(), hashlib.sha256).hexdigest()


def webhook_secret_matches(password: str, project_id: int | None, given: str | None) -> bool:
    if project_id is None or not given:
        return False
    return hmac.compare_digest(webhook_secret(password, project_id).encode(), given.encode("utf-8", "replace"))
