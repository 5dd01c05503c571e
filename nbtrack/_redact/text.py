"""Credentials in free text, in values, and in URIs: what params, tags, messages, tracebacks and
log lines go through before nbtrack stores or shows them.

Rules for text (``text_secrets`` finds what they match, ``redact_text`` replaces it):

- well-known token shapes (OpenAI, Anthropic, Hugging Face, GitHub, GitLab, Slack, AWS, Google,
  PyPI, npm, JWTs), wherever they appear;
- the user and password of a URL (``scheme://user:password@host``), also a password that
  holds ``@``, ``/``, ``#``, ``?`` or ``'`` unquoted, as requests and SQLAlchemy (MLflow's
  readers of a store's URI) accept them;
- ``Bearer <token>`` and ``Basic <base64 of user:password>``, whatever comes before them, and
  the whole value of an ``Authorization`` header;
- ``NAME=value``, ``NAME: value``, ``"NAME": "value"``, ``--NAME value``, ``--NAME=value``,
  ``'NAME', 'value'`` and ``-u user:pass`` where NAME is a credential's name
  (``names.is_secret_name``): query strings (``?access_token=``), environment assignments,
  command-line options, headers, dict reprs, and argument lists and pairs as Python prints
  them (``['--token', '...']`` in a ``CalledProcessError``);
- the signature of a signed URL (``sig=``, ``X-Amz-Signature=``, ``X-Goog-Signature=``) and
  the whole of an Azure ``SharedAccessSignature=``;
- values known to be secrets (those a cell assigned to credential names), passed in as
  ``known``.

Values (``redact_value``): dict/list/tuple/set values are redacted by key at every depth
before they become text, then the text rules apply.
"""

from __future__ import annotations

import base64
import bisect
import re
import sys
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from nbtrack._model import MAX_PARAM_VALUE_LENGTH, value_text
from nbtrack._redact.names import is_secret_name

__all__ = [
    "REDACTED",
    "redact_shapes",
    "redact_text",
    "redact_value",
    "replace_values",
    "safe_link",
    "stored_value",
    "strip_uri_credentials",
    "text_secrets",
]

REDACTED = "<redacted>"
# Known secret values shorter than this are not searched for in free text: two or three
# characters would match ordinary words.
MIN_KNOWN_LENGTH = 4

_TOKEN_SHAPES = re.compile(
    r"""(?x)
    \b(
      sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}   # OpenAI, Anthropic
    | hf_[A-Za-z0-9]{20,}                     # Hugging Face
    | gh[pousr]_[A-Za-z0-9]{20,}              # GitHub
    | github_pat_[A-Za-z0-9_]{20,}            # GitHub fine-grained
    | glpat-[A-Za-z0-9_\-]{20,}               # GitLab
    | xox[abpr]-[A-Za-z0-9\-]{10,}            # Slack
    | (?:AKIA|ASIA)[0-9A-Z]{16}               # AWS access key id
    | AIza[0-9A-Za-z_\-]{35}                  # Google API key
    | pypi-[A-Za-z0-9_\-]{40,}                # PyPI
    | npm_[A-Za-z0-9]{30,}                    # npm
    | eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}  # JWT
    )
    """
)
# ``user:password@`` or ``token@`` after a scheme, as either reader of a store's URI takes it:
# requests up to the last ``@`` before the first ``/``, ``?`` or ``#`` (the password may hold
# ``@``), SQLAlchemy up to the first ``@`` (the password may hold ``/``, ``#`` or ``?``).
# In free text a URL usually sits in quotes, so a password's ' (which MLflow's clients accept)
# is taken only where the rest up to the @ has no quote or space; in a URI anything goes.
# (A password with / # or ? is taken up to 1024 characters: an unbounded one made every
# scheme in a long word without an @ scan to its end.)
_USERINFO = r"[^/?#\s\"]+(?=@)|[^:/@\s'\"]*:[^@\s\"]{0,1024}"
# A scheme is looked for where a word starts (after digits or dots there: 1.https://...):
# tried at every letter of a long word, the scheme's own pattern made redacting a
# 100k-character message take seconds (quadratic).
_URL_USERINFO = re.compile(
    r"(?<![A-Za-z0-9+.\-])[0-9+.\-]*"
    rf"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<v>{_USERINFO})@"
)
_URI_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<v>[^/?#\s]+(?=@)|[^:/@\s]*:[^@\s]*)@"
)
# Query keys that carry a URL's signature, the secret part of a signed (pre-signed, SAS) URL.
_SIGNATURE_KEYS = frozenset({"sig", "signature", "x-amz-signature", "x-goog-signature"})
_SIGNATURE = re.compile(
    r"(?i)(?<=[?&;])(?:sig|signature|x-amz-signature|x-goog-signature)=(?P<v>[^&\s'\"#;]+)"
    r"|\bSharedAccessSignature=(?P<w>[^;\s'\"]+)"
)
_BEARER = re.compile(r"(?i)\bbearer\s+(?P<v>[^\s'\"<>,;]+)")
# ``Basic <base64 of user:password>``: checked to decode to a user and a password, so that
# "a basic understanding" stays.
_BASIC = re.compile(r"(?i)basic\s+(?P<v>[A-Za-z0-9+/]{4,}={0,2})")
# A string literal's prefix, as Python prints bytes (b'...') and as code writes raw strings.
_PREFIX = r"(?:[bBrRuU]{1,2}(?=['\"]))?"
_AUTHORIZATION = re.compile(
    rf"(?i)(?:proxy-)?authorization['\"]?\s*[:=]\s*{_PREFIX}['\"]?(?P<v>[^'\"\r\n]*[^'\"\s])"
)
_QUOTED = rf"{_PREFIX}(?:'(?P<v1>[^'\n]*)'|\"(?P<v2>[^\"\n]*)\")"
# NAME=value / NAME: value / "NAME": "value", also JSON inside a JSON string (\"NAME\":
# \"value\", as an error body quotes a request). An unquoted value runs to a space, a quote,
# & or ; (passwords hold other punctuation), see _unquoted_end. Exception names
# (``TokenError: ...``) are not credential names, see _credentials_name. The value is matched only
# after a credential's name (``_NAMED_VALUE``): matched with every name, it made a long
# ``a=a=a=...`` quadratic.
_NAMED = re.compile(
    r"(?P<q>\\?['\"]|)(?<![\w.-])(?:--?)?(?P<n>[A-Za-z_][\w.-]*)(?P=q)\s*(?P<sep>[=:])(?!=)\s*"
)
_NAMED_VALUE = re.compile(rf"\\\"(?P<v4>[^\"\\\n]*)\\\"|{_QUOTED}|(?P<v3>[^\s&;'\"=][^\s&;'\"]*)")
_OPTION = re.compile(
    rf"(?<!\S)--?(?P<n>[A-Za-z][\w-]*)\s+(?:{_QUOTED}|(?P<v3>[^\s'\"\-][^\s'\"]*))"
)
# 'NAME', 'value' as Python prints a list or tuple (an argument list, a pair).
_PAIR = re.compile(rf"(?P<q>['\"])(?:--?)?(?P<n>[A-Za-z_][\w.-]*)(?P=q)\s*,\s*(?:{_QUOTED})")
_USER_OPTION = re.compile(
    r"(?<!\S)(?:-u|--user)\s*(?:(?P<q>['\"])[^:'\"\n]+:(?P<w>[^'\"\n]+)(?P=q)"
    r"|['\"]?[^\s:'\"]+:(?P<v>[^\s'\"]+))"
)
_NOT_A_NAME = re.compile(r"(Error|Exception|Warning)$")


def _credentials_name(match: re.Match[str]) -> bool:
    name = match["n"]
    return is_secret_name(name) and not _NOT_A_NAME.search(name)


def _value_span(match: re.Match[str]) -> tuple[int, int] | None:
    """Where the value a credential's name names is, in a match of its value's groups."""
    found = match.groupdict()
    for group in ("v1", "v2", "v4"):
        if found.get(group) is not None:
            return (match.start(group), match.end(group)) if found[group] else None
    if found.get("v3"):
        start = match.start("v3")
        return start, _unquoted_end(match.string, start, match.end("v3"))
    return None


_OPENERS, _CLOSERS = "([{<", ")]}>"


def _unquoted_end(text: str, start: int, end: int) -> int:
    """Where an unquoted value that starts at ``start`` ends (``end``: at the next space,
    quote, & or ;). A value that opens a bracket runs to the bracket that closes it on its line
    (``password={'db': '...'}``); otherwise a closing bracket it never opened, or a comma, at
    its end belongs to the text around it (``login(token=abc)``, ``token=abc, lr=0.1``)."""
    if text[start] in _OPENERS:
        depth = 0
        for index in range(start, len(text)):
            char = text[index]
            if char == "\n":
                return index
            if char in _OPENERS:
                depth += 1
            elif char in _CLOSERS:
                depth -= 1
                if depth == 0:
                    return index + 1
        return len(text)
    value = text[start:end]
    unopened = {c: value.count(c) - value.count(o) for o, c in zip(_OPENERS, _CLOSERS, strict=True)}
    while end > start + 1:
        last = text[end - 1]
        if last == "," or unopened.get(last, 0) > 0:
            if last != ",":
                unopened[last] -= 1
            end -= 1
            continue
        break
    return end


def _spans(text: str) -> list[tuple[int, int]]:
    """Where the secrets in ``text`` are: (start, end) pairs, possibly overlapping."""
    spans = [m.span() for m in _TOKEN_SHAPES.finditer(text)]
    for pattern in (_URL_USERINFO, _BEARER, _AUTHORIZATION):
        spans.extend(m.span("v") for m in pattern.finditer(text))
    spans.extend(m.span("v" if m["v"] is not None else "w") for m in _USER_OPTION.finditer(text))
    spans.extend(m.span("v" if m["v"] is not None else "w") for m in _SIGNATURE.finditer(text))
    spans.extend(m.span("v") for m in _BASIC.finditer(text) if _is_basic_credential(m["v"]))
    for pattern in (_NAMED, _OPTION, _PAIR):
        # A "name" that is itself a value found secret (``'password': 'my-secret', 'lr'``)
        # names nothing. (Looked up by bisection: the values this loop finds lie behind it.)
        found = _merged(spans)
        starts = [start for start, _ in found]
        position = 0
        while (match := pattern.search(text, position)) is not None:
            at = bisect.bisect_right(starts, match.start("n")) - 1
            named = at < 0 or match.start("n") >= found[at][1]
            span, value = None, None
            if named and _credentials_name(match):
                value = _NAMED_VALUE.match(text, match.end()) if pattern is _NAMED else match
                span = _value_span(value) if value is not None else None
            if span is not None and value is not None:
                spans.append(span)
                position = max(value.end(), span[1])
            else:
                # Not a credential's name: look again inside its value, which may hold one
                # (``url: https://host/?access_token=...``).
                position = match.end("n")
    return spans


def _is_basic_credential(text: str) -> bool:
    try:
        decoded = base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error
        return False
    return b":" in decoded


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def text_secrets(text: str) -> list[str]:
    """The secrets the text rules find in ``text``, as substrings of it."""
    return [text[start:end] for start, end in _merged(_spans(text)) if end > start]


def redact_text(text: str, known: Iterable[str] = ()) -> str:
    """Free text (a param value, a message, a traceback, a log line) with every secret the
    rules find, and every ``known`` secret value, replaced by ``<redacted>``."""
    text = replace_values(text, known)
    for start, end in reversed(_merged(_spans(text))):
        if text[start:end] != REDACTED:
            text = text[:start] + REDACTED + text[end:]
    return text


def replace_values(text: str, values: Iterable[str], shortest: int = MIN_KNOWN_LENGTH) -> str:
    """``text`` with each of ``values`` (at least ``shortest`` characters long) replaced, where
    it is not part of a longer word."""
    for value in sorted({v for v in values if len(v) >= shortest}, key=len, reverse=True):
        if value not in text:
            continue
        before = r"(?<![\w])" if re.match(r"\w", value[0]) else ""
        after = r"(?![\w])" if re.match(r"\w", value[-1]) else ""
        text = re.sub(before + re.escape(value) + after, REDACTED, text)
    return text


def redact_value(value: Any, _depth: int = 0) -> Any:
    """``value`` with the values of credential-named keys replaced at every depth of its
    dicts, lists, tuples and sets (a key is a credential's name, or a string that is one)."""
    if _depth > 50:
        return REDACTED  # deeper than any config: unclear, so redacted
    if isinstance(value, dict):
        return {
            k: REDACTED if _is_secret_key(k) else redact_value(v, _depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        items = [redact_value(v, _depth + 1) for v in value]
        # ("password", "hunter2") as a pair: the second item is the first one's value.
        for index, item in enumerate(list(value)[:-1]):
            if isinstance(item, str) and is_secret_name(item) and isinstance(value, list | tuple):
                items[index + 1] = REDACTED
        if isinstance(value, list):
            return items
        if isinstance(value, tuple):
            return _tuple_like(value, items)
        return type(value)(items)
    return value


def _is_secret_key(key: object) -> bool:
    if isinstance(key, bytes):
        key = key.decode("utf-8", "replace")
    return isinstance(key, str) and is_secret_name(key)


def _tuple_like(value: tuple[Any, ...], items: list[Any]) -> tuple[Any, ...]:
    """``items`` as a tuple of ``value``'s own type where it is a named tuple, so that its
    text keeps the field names (``DB(user='bob', password='<redacted>')``) and the text rules
    see which value is whose; each field is also redacted by its name."""
    fields = getattr(type(value), "_fields", None)
    if isinstance(fields, tuple) and len(fields) == len(items):
        items = [
            REDACTED if _is_secret_key(field) else item
            for field, item in zip(fields, items, strict=True)
        ]
        try:
            return type(value)(*items)
        except Exception:  # noqa: BLE001 - a tuple subclass of its own making: a plain tuple
            return tuple(items)
    return tuple(items)


def stored_value(value: object, limit: int = MAX_PARAM_VALUE_LENGTH, key: str | None = None) -> str:
    """A param or tag value as nbtrack stores it, whichever way it entered (captured,
    ``--param``, ``--tag``, ``log_params``): ``<redacted>`` under a credential's name ``key``;
    otherwise as text, redacted by key at every depth and by the text rules, cut at ``limit``
    (MLflow's) with a visible marker. The one place params and tags go through."""
    if key is not None and is_secret_name(key):
        return REDACTED
    text = value_text(redact_value(value), limit=sys.maxsize)
    return value_text(redact_text(text), limit)


def strip_uri_credentials(uri: str) -> str:
    """The URI without user name, password, or credential-like query parameters.

    ``https://user:pw@mlflow.example/?token=x&db=1`` becomes ``https://mlflow.example/?db=1``.
    Non-URL strings (a bare path) come back unchanged.
    """
    userinfo = _URI_USERINFO.match(uri)
    if userinfo is not None:
        # Cut as SQLAlchemy reads it (urlsplit would end the password at a / # or ?).
        uri = userinfo["scheme"] + uri[userinfo.end() :]
    try:
        parts = urlsplit(uri)
    except ValueError:  # not a URL urllib reads (http://[::1): without a query, which may hold one
        return uri.split("?", 1)[0]
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not parts.scheme or not any(_secret_query_key(k) for k, _ in pairs):
        # Nothing more to remove; also keeps `sqlite:////abs/path` intact, which a round trip
        # through urlunsplit would shorten to `sqlite://abs/path`.
        return uri
    query = urlencode([(k, v) for k, v in pairs if not _secret_query_key(k)])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _secret_query_key(key: str) -> bool:
    return is_secret_name(key) or key.lower() in _SIGNATURE_KEYS


def safe_link(url: str | None) -> str | None:
    """An http(s) URL without credentials, or None: the only kind nbtrack ever shows as a link
    (a ``javascript:`` or ``data:`` URL from a record would run in the notebook's page)."""
    if not url:
        return None
    cleaned = strip_uri_credentials(url)
    try:
        parts = urlsplit(cleaned)
    except ValueError:  # http://[::1: not a link anyone can follow
        return None
    return cleaned if parts.scheme in ("http", "https") and parts.netloc else None


def redact_shapes(text: str) -> str:
    """Only the rules that cannot mistake code for a secret: token shapes, URL passwords and
    ``Bearer <token>``. Run over whole cells, after the syntax tree's own rules."""
    spans = [m.span() for m in _TOKEN_SHAPES.finditer(text)]
    spans.extend(m.span("v") for m in _URL_USERINFO.finditer(text))
    spans.extend(m.span("v") for m in _BEARER.finditer(text))
    for start, end in reversed(_merged(spans)):
        if text[start:end] != REDACTED:
            text = text[:start] + REDACTED + text[end:]
    return text
