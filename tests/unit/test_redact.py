"""Redaction of credentials in code, free text and URIs."""

from __future__ import annotations

import pytest

from nbtrack._redact import is_secret_name, redact_code, strip_uri_credentials


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "API_KEY",
        "hf_token",
        "HF_TOKEN",
        "password",
        "db_password",
        "dbpassword",
        "passwd",
        "client_secret",
        "aws_secret_access_key",
        "credentials",
        "auth",
        "githubToken",
        "openaiApiKey",
        "private_key",
    ],
)
def test_credential_names_are_recognised(name):
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    ["tokenizer", "max_tokens", "keyframes", "author", "monkey", "lr", "batch_size", "passes"],
)
def test_ordinary_names_are_left_alone(name):
    assert not is_secret_name(name)


def test_code_redaction_covers_assignments_keywords_environ_dicts_and_urls():
    code = (
        "api_key = 'abc123'\n"
        "lr = 1e-3\n"
        "os.environ['HF_TOKEN'] = 'hf_" + "x" * 30 + "'\n"
        "login(token='t0k', user='bob')\n"
        "cfg = {'password': 'pw', 'lr': 1}\n"
        "uri = 'postgresql://bob:pw@host/db'\n"
        "token = os.environ['TOKEN']\n"
        "secret = getpass()\n"
    )
    out = redact_code(code)
    for leaked in ("abc123", "hf_xxx", "t0k", "'pw'", "bob:pw"):
        assert leaked not in out
    # Structure and harmless code stay readable.
    assert "lr = 1e-3" in out
    assert "user='bob'" in out
    assert "'lr': 1" in out
    assert "token = os.environ['TOKEN']" in out
    assert "secret = getpass()" in out


def test_ipython_syntax_is_redacted_line_by_line():
    out = redact_code("%env WANDB_API_KEY=abc\n!echo hi\nmy_token = 'zzz'\n%timeit x")
    assert "abc" not in out
    assert "zzz" not in out
    assert "!echo hi" in out
    assert "%timeit x" in out


def test_multiline_and_unicode_values_are_redacted_precisely():
    out = redact_code("name = 'é'\npassword = (\n    'part1'\n    'part2'\n)\nafter = 1\n")
    assert "part1" not in out
    assert "name = 'é'" in out
    assert "after = 1" in out


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("https://user:pw@mlflow.example/x?token=t&db=1", "https://mlflow.example/x?db=1"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        ("postgresql://bob:secret@db:5432/mlflow", "postgresql://db:5432/mlflow"),
        ("databricks", "databricks"),
    ],
)
def test_uri_credentials_are_stripped(uri, expected):
    assert strip_uri_credentials(uri) == expected
