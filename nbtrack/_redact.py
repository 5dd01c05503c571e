"""Recognise credentials so that they are never logged, displayed or saved.

Three places can leak a secret: a parameter captured from an assignment (``api_key = "..."``),
the code nbtrack stores with a run (the cell and the session history), and a tracking URI with a
user name and password in it. Everything nbtrack writes passes through this module first.
"""

from __future__ import annotations

import ast
import re
import sys
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from nbtrack._model import MAX_PARAM_VALUE_LENGTH, value_text

REDACTED = "<redacted>"

# Whole name-parts that mark a credential. Matching on parts, not substrings, keeps
# `tokenizer`, `keyframes` or `author` from being hidden while `hf_token` and `db_password` are.
_SECRET_PARTS = frozenset(
    {
        "key",
        "apikey",
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "pass",
        "passphrase",
        "credential",
        "credentials",
        "auth",
        "authorization",
        "cookie",
        "bearer",
        "privatekey",
        "sas",
        "dsn",
    }
)
# These are unmistakable even inside a longer word (`dbpassword`, `clientsecret`).
_SECRET_SUBSTRINGS = ("password", "passwd", "secret", "credential", "apikey", "accesskey")

_NAME_PARTS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")

# Token shapes of common providers, caught wherever they appear in code as string literals.
_TOKEN_SHAPES = re.compile(
    r"""(?x)
    \b(
      sk-[A-Za-z0-9_\-]{16,}            # OpenAI-style
    | hf_[A-Za-z0-9]{20,}               # Hugging Face
    | gh[pousr]_[A-Za-z0-9]{20,}        # GitHub
    | xox[abpr]-[A-Za-z0-9\-]{10,}      # Slack
    | AKIA[0-9A-Z]{16}                  # AWS access key id
    | glpat-[A-Za-z0-9_\-]{20,}         # GitLab
    )\b
    """
)
# user:password@ inside any URL-looking string.
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/@\s'\"]+)@")


def is_secret_name(name: str) -> bool:
    """True when a variable, parameter or key name looks like it holds a credential."""
    lowered = name.lower()
    if any(word in lowered for word in _SECRET_SUBSTRINGS):
        return True
    parts = {part.lower() for part in _NAME_PARTS.findall(name)}
    return not parts.isdisjoint(_SECRET_PARTS)


def strip_uri_credentials(uri: str) -> str:
    """The URI without user name, password, or credential-like query parameters.

    ``https://user:pw@mlflow.example/?token=x&db=1`` becomes ``https://mlflow.example/?db=1``.
    Non-URL strings (a bare path) come back unchanged.
    """
    parts = urlsplit(uri)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not parts.scheme or (
        "@" not in parts.netloc and not any(is_secret_name(k) for k, _ in pairs)
    ):
        # Nothing to remove; also keeps `sqlite:////abs/path` intact, which a round trip
        # through urlunsplit would shorten to `sqlite://abs/path`.
        return uri
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = urlencode([(k, v) for k, v in pairs if not is_secret_name(k)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_code(source: str) -> str:
    """Source code with every credential value replaced by ``"<redacted>"``.

    Covers assignments to credential-like names (also attributes, subscripts such as
    ``os.environ["HF_TOKEN"] = ...`` and keyword arguments such as ``login(token=...)``),
    ``%env NAME=value`` lines, tokens of well-known shapes and passwords inside URLs.
    Code that does not parse (IPython syntax, a syntax error) is redacted line by line.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return "\n".join(_redact_line(line) for line in source.split("\n"))
    spans = sorted(_secret_value_spans(tree), reverse=True)
    lines = source.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line.encode("utf-8")) + 1)
    data = source.encode("utf-8")
    for (row, col), (end_row, end_col) in _merge(spans):
        start = offsets[row - 1] + col
        end = offsets[end_row - 1] + end_col
        data = data[:start] + repr(REDACTED).encode() + data[end:]
    return _scrub_literals(data.decode("utf-8"))


def _secret_value_spans(tree: ast.AST) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    spans = []
    for node in ast.walk(tree):
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            if any(_target_is_secret(t) for t in node.targets):
                value = node.value
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            if _target_is_secret(node.target):
                value = node.value
        elif isinstance(node, ast.keyword):
            if node.arg is not None and is_secret_name(node.arg):
                value = node.value
        elif isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(k, ast.Constant)
                    and isinstance(k.value, str)
                    and is_secret_name(k.value)
                ):
                    spans.append(_span(v))
        if value is not None and not _is_harmless(value):
            spans.append(_span(value))
    return spans


def _target_is_secret(target: ast.expr) -> bool:
    if isinstance(target, ast.Name):
        return is_secret_name(target.id)
    if isinstance(target, ast.Attribute):
        return is_secret_name(target.attr)
    if isinstance(target, ast.Subscript):
        key = target.slice
        return (
            isinstance(key, ast.Constant)
            and isinstance(key.value, str)
            and is_secret_name(key.value)
        )
    if isinstance(target, ast.Tuple | ast.List):
        return any(_target_is_secret(elt) for elt in target.elts)
    return False


def _is_harmless(value: ast.expr) -> bool:
    """Values that reveal nothing: ``None``, booleans, and reading the secret from elsewhere
    (``os.environ[...]``, ``getpass()``, a plain name) are left readable."""
    if isinstance(value, ast.Constant):
        return value.value is None or isinstance(value.value, bool)
    return isinstance(value, ast.Name | ast.Call | ast.Subscript | ast.Attribute)


def _span(node: ast.expr) -> tuple[tuple[int, int], tuple[int, int]]:
    end_line = node.end_lineno if node.end_lineno is not None else node.lineno
    end_col = node.end_col_offset if node.end_col_offset is not None else node.col_offset
    return (node.lineno, node.col_offset), (end_line, end_col)


def _merge(
    spans: list[tuple[tuple[int, int], tuple[int, int]]],
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Drop spans nested in another one (a dict literal inside a redacted assignment)."""
    kept: list[tuple[tuple[int, int], tuple[int, int]]] = []
    for span in sorted(spans, key=lambda s: (s[0], (-s[1][0], -s[1][1]))):
        if kept and span[0] >= kept[-1][0] and span[1] <= kept[-1][1]:
            continue
        kept.append(span)
    return sorted(kept, reverse=True)


_ASSIGN_LINE = re.compile(
    r"^(?P<lead>\s*(?:%env\s+|%set_env\s+|export\s+|!export\s+)?)"
    r"(?P<name>[A-Za-z_][\w.\[\]'\"]*)(?P<eq>\s*[:=]\s*|\s+)(?P<value>\S.*)$"
)


def _redact_line(line: str) -> str:
    match = _ASSIGN_LINE.match(line)
    if match and is_secret_name(re.sub(r"[\[\]'\"]", "_", match["name"])):
        line = f"{match['lead']}{match['name']}{match['eq']}{REDACTED}"
    return _scrub_literals(line)


def safe_link(url: str | None) -> str | None:
    """An http(s) URL without credentials, or None: the only kind nbtrack ever shows as a link
    (a ``javascript:`` or ``data:`` URL from a record would run in the notebook's page)."""
    if not url:
        return None
    cleaned = strip_uri_credentials(url)
    parts = urlsplit(cleaned)
    return cleaned if parts.scheme in ("http", "https") and parts.netloc else None


def stored_value(value: object, limit: int = MAX_PARAM_VALUE_LENGTH) -> str:
    """A param or tag value as nbtrack stores it, whichever way it entered: as text, secrets
    redacted, cut at ``limit`` (MLflow's) with a visible marker. The one place params and tags
    go through."""
    return value_text(redact_text(value_text(value, limit=sys.maxsize)), limit)


def redact_text(text: str) -> str:
    """Free text (a param value, a message) with tokens and URL passwords replaced."""
    return _scrub_literals(text)


def _scrub_literals(text: str) -> str:
    text = _TOKEN_SHAPES.sub(REDACTED, text)
    return _URL_USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
