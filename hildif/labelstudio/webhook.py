"""The per-project key that lets Label Studio's webhooks through a backend protected by basic auth.

Label Studio creates the ML backend's project webhook (``<backend>/webhook``) without the backend's credentials, so
with basic auth on every annotation event would be refused. When hildif connects a backend with credentials it asks
the backend for the project's webhook key (``POST <backend>/webhook-keys {"project": id}``, basic auth: a random key
the backend keeps, :mod:`ml_backend.webhook_keys`; asking again rotates it) and adds it to that webhook as the header
``X-Hildif-Webhook-Secret: <key>``. A leaked key admits webhooks for that one project only, never the other
endpoints, and says nothing about the backend password.
"""

from __future__ import annotations

from hildif.errors import HildifError

WEBHOOK_SECRET_HEADER = "X-Hildif-Webhook-Secret"
WEBHOOK_KEYS_PATH = "/webhook-keys"


class WebhookKeyError(HildifError):
    """The backend did not issue a webhook key (the message says why, never the credentials)."""


def request_webhook_key(backend_url: str, basic_auth: tuple[str, str], project_id: int, timeout: float = 30.0) -> str:
    """A new webhook key for ``project_id`` from the backend at ``backend_url`` (its previous key stops working)."""
    import requests

    url = backend_url.rstrip("/") + WEBHOOK_KEYS_PATH
    try:
        resp = requests.post(url, json={"project": int(project_id)}, auth=basic_auth, timeout=timeout)
    except requests.RequestException as exc:
        raise WebhookKeyError(f"cannot reach the backend at {backend_url} for project {project_id}'s webhook key: "
                              f"{type(exc).__name__}") from None
    try:
        key = resp.json().get("key") if resp.ok else None
    except (ValueError, AttributeError):  # not a JSON object: not hildif's backend
        key = None
    if not isinstance(key, str) or not key:
        raise WebhookKeyError(f"the backend at {backend_url} did not issue a webhook key for project {project_id} "
                              f"(HTTP {resp.status_code})")
    return key
