"""Annotators who can log in: the organization's invite link, and accounts made through it.

Label Studio Community Edition makes accounts that can log in only through its signup form opened from the
organization's invite link (``GET /api/invite``); users made with ``POST /api/users`` cannot log in. So
:func:`add_annotators` does what a person following the link would do: it opens the link, posts the signup form with
the email and a generated password, and checks that the new session is that person. Each annotator gets their own
account in the admin's organization; the password is returned once (hildif keeps no copy).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Iterable

import httpx

from hildif.errors import HildifError
from hildif.labelstudio.client import LabelStudioClient, LabelStudioError, LabelStudioUnavailable

# what Label Studio's signup form accepts as an email, loosely: one @, no spaces, a dot in the domain
_EMAIL = re.compile(r"^[A-Za-z0-9._%+'-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_CSRF = re.compile(r'name="csrfmiddlewaretoken"\s+value="([A-Za-z0-9]{20,128})"')


class AnnotatorError(HildifError, ValueError):
    """An annotator's email is not one; the message names it."""


@dataclass(frozen=True)
class Annotator:
    """An annotator's account. ``password`` is the generated one, set only when the account was made now (it is
    shown once; hildif keeps no copy); ``None`` for an email that already had an account."""

    email: str
    user_id: int
    password: str | None

    @property
    def created(self) -> bool:
        return self.password is not None


def check_email(email: str) -> str:
    """``email`` stripped and in lower case (as Label Studio keeps it), or :class:`AnnotatorError` naming it when it
    does not look like an email."""
    value = (email or "").strip().lower()
    if len(value) > 254 or not _EMAIL.match(value):
        raise AnnotatorError(f"annotator email {email[:80]!r}: not an email address (name@example.org)")
    return value


_PASSWORD_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no look-alikes, nothing to quote


def generate_password() -> str:
    """16 random letters and digits (Label Studio asks for at least 8)."""
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(16))


def invite_link(client: LabelStudioClient) -> str:
    """The organization's signup link, absolute (on the URL hildif reaches Label Studio at)."""
    return client.url + client.invite_path()


def sign_up(url: str, link: str, email: str, password: str, timeout: float = 30.0) -> int:
    """Post Label Studio's signup form at ``link`` as a browser would; returns the new user's id. Raises
    :class:`LabelStudioError` naming the email when Label Studio refuses it (email taken, password rules)."""
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True) as http:
            page = http.get(link)
            csrf = _CSRF.search(page.text) if page.status_code == 200 else None
            if csrf is None:
                raise LabelStudioError(f"Label Studio's signup page (HTTP {page.status_code}) has no signup form: "
                                       "is the invite link current? (`hildif annotators invite` prints it)")
            http.post(link, data={"csrfmiddlewaretoken": csrf.group(1), "email": email, "password": password},
                      headers={"Referer": link})
            me = http.get(f"{url}/api/current-user/whoami")
    except httpx.TransportError as exc:
        raise LabelStudioUnavailable(f"Label Studio at {url} is unreachable while signing up {email} "
                                     f"({type(exc).__name__}); is it running?") from exc
    try:
        body = me.json() if me.status_code == 200 else {}
        user_id, who = int(body["id"]), str(body.get("email", ""))
    except (ValueError, KeyError, TypeError):
        user_id, who = 0, ""
    if who.lower() != email.lower() or user_id <= 0:
        raise LabelStudioError(f"Label Studio refused the signup of {email} (is the email taken, or the password "
                               "too short for its rules?)")
    return user_id


def add_annotators(client: LabelStudioClient, emails: Iterable[str], password=generate_password) -> list[Annotator]:
    """An account for each email in the admin's organization, made through the invite link with a generated
    password; emails that already have an account are returned with ``password=None``. All emails are checked
    before any account is made."""
    wanted = list(dict.fromkeys(check_email(e) for e in emails))
    if not wanted:
        raise AnnotatorError("no annotator email given")
    known = {name.lower(): uid for uid, name in client.users().items()}
    link = invite_link(client) if any(e.lower() not in known for e in wanted) else ""
    out = []
    for email in wanted:
        if email.lower() in known:
            out.append(Annotator(email, known[email.lower()], None))
            continue
        secret = password()
        out.append(Annotator(email, sign_up(client.url, link, email, secret, timeout=30.0), secret))
    return out


__all__ = ["Annotator", "AnnotatorError", "add_annotators", "check_email", "generate_password", "invite_link", "sign_up"]
