"""Recognise credentials so that they are never logged, displayed or saved.

Everything nbtrack stores or shows passes through here first: params and tags (``stored_value``,
whichever way they entered), the code kept with a run (``redact_cell``: IPython syntax turned
into Python, then the syntax tree), failures and log lines (``redact_text``, with the secret
values a cell is known to hold), and tracking URIs (``strip_uri_credentials``, ``safe_link``).
The rules are listed in ``names`` (which names hold credentials), ``syntax`` (which values in
code are secrets by where they stand), ``strings`` (which strings, commands and comments in code
hold one by their text) and ``text`` (what a secret looks like in free text).
"""

from __future__ import annotations

from nbtrack._redact.code import RedactedCode, credential_variables, redact_cell, redact_code
from nbtrack._redact.names import is_secret_name
from nbtrack._redact.text import (
    REDACTED,
    redact_text,
    redact_value,
    replace_values,
    safe_link,
    stored_value,
    strip_uri_credentials,
    text_secrets,
)

__all__ = [
    "REDACTED",
    "RedactedCode",
    "credential_variables",
    "is_secret_name",
    "redact_cell",
    "redact_code",
    "redact_text",
    "redact_value",
    "replace_values",
    "safe_link",
    "stored_value",
    "strip_uri_credentials",
    "text_secrets",
]
