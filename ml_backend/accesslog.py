"""gunicorn's logger with every access-log field escaped, so that a request cannot write a line of its own.

gunicorn writes the URL-decoded path (``%(U)s``), the user agent and the other fields as sent, escaping only ``"``:
``/jobs/x%0a<date> ml_backend.jobs: job FORGED done`` wrote a forged line, ``%00`` a NUL. Here a backslash, ``"`` and
every control or line-breaking character (C0, DEL, C1, U+2028/U+2029) of a field is written as a Python escape
(``\\n``, ``\\x00``, ``\\u2028``), so one request is one line. Selected with gunicorn's ``logger_class`` setting.
"""

from __future__ import annotations

import re

from gunicorn.glogging import Logger, SafeAtoms

_UNSAFE = re.compile(r'[\\"\x00-\x1f\x7f-\x9f\u2028\u2029]')
_NAMED = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text: str) -> str:
    """``text`` with backslash, ``"`` and control characters escaped (one printable line)."""
    def one(m: re.Match[str]) -> str:
        c = m.group()
        return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
    return _UNSAFE.sub(one, text)


class EscapedAtoms(SafeAtoms):
    def __init__(self, atoms: dict) -> None:
        dict.__init__(self)
        for key, value in atoms.items():
            self[key] = escape(value) if isinstance(value, str) else value


class EscapingLogger(Logger):
    atoms_wrapper_class = EscapedAtoms


LOGGER_CLASS = f"{__name__}.EscapingLogger"
