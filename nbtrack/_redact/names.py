"""Which names hold credentials: variables, keywords, dict keys, environment variables,
command-line options, headers.

A name is split into parts (``hf_token`` -> hf, token; ``openaiApiKey`` -> openai, api, key;
``X-Api-Key`` -> x, api, key) and is a credential's name when, deliberately broadly:

- a part is one of ``_SECRET_PARTS`` (``token``, ``key``, ``password``, ``pw``, ``creds``,
  ``auth``, ...);
- a part ends in ``token``, ``key``, ``pw``, ``pwd`` or ``auth`` (names glued together:
  ``mytoken``, ``APITOKEN``, ``openaikey``, ``dbpw``, ``oauth``), English words that merely end
  so (``monkey``, ``turkey``) excepted;
- the name contains ``password``, ``passwd``, ``secret``, ``credential``, ``apikey``,
  ``accesskey`` or ``privatekey`` anywhere, also across ``_`` and ``-`` (``API_KEYS``).

Parts, not substrings, keep ``tokenizer``, ``max_tokens``, ``keyframes``, ``author`` and
``passes`` readable, and a name whose last part says it counts, sizes or numbers something
(``key_dim``, ``num_key_value_heads``, ``pad_token_id``, ``max_token_length``) is a model's
hyperparameter, not a credential: only the substrings above make such a name a credential's.
Where a name is unclear it counts as a secret: a param that reads ``<redacted>`` is a small
loss, a leaked key is not.
"""

from __future__ import annotations

import functools
import re

__all__ = ["is_secret_name"]

_SECRET_PARTS = frozenset(
    {
        "key",
        "apikey",
        "token",
        "secret",
        "secrets",
        "password",
        "passwords",
        "passwd",
        "pwd",
        "pw",
        "pass",
        "passphrase",
        "credential",
        "credentials",
        "cred",
        "creds",
        "auth",
        "authorization",
        "cookie",
        "cookies",
        "bearer",
        "privatekey",
        "sas",
        "dsn",
        "jwt",
    }
)
_SECRET_SUBSTRINGS = ("password", "passwd", "secret", "credential", "apikey", "accesskey",
                      "privatekey")  # fmt: skip
_SECRET_SUFFIXES = ("token", "key", "pw", "pwd", "auth")
# Ordinary words that end like a glued credential name.
_NOT_SECRET = frozenset(
    {
        "monkey",
        "donkey",
        "turkey",
        "whiskey",
        "hockey",
        "jockey",
        "lackey",
        "hotkey",
        "malarkey",
        "keykey",
    }
)
# Last parts that make a name a count, size or number of keys or tokens (``pad_token_id``).
_MEASURES = frozenset(
    {"id", "ids", "idx", "index", "dim", "dims", "size", "len", "length", "count", "heads",
     "type", "types"}
)  # fmt: skip
_NAME_PARTS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """True when a variable, parameter, key, header or option name looks like it holds a
    credential (see the module's docstring for the rules)."""
    lowered = name.lower()
    # Also across separators: API_KEYS, access_keys.
    squeezed = lowered.replace("_", "").replace("-", "")
    if any(word in squeezed for word in _SECRET_SUBSTRINGS):
        return True
    parts = [p.lower() for p in _NAME_PARTS.findall(name)]
    if len(parts) > 1 and parts[-1] in _MEASURES:
        return False
    for part in parts:
        if part in _SECRET_PARTS:
            return True
        if part not in _NOT_SECRET and part.endswith(_SECRET_SUFFIXES):
            return True
    return False
