"""Credentials out of code: the cells nbtrack keeps as artifacts, whatever syntax they use.

Every cell takes the same path. IPython's own input transformers turn its syntax (``!cmd``,
``%magic``, ``x = !cmd``, ``%%cell_magic``) into Python first; the syntax tree then says which
values are secrets (``syntax.find_edits``); the edits are mapped back onto the cell as written,
so that the artifact reads like the notebook. A cell magic is split into its line and its
body, and the body is redacted as what it is (Python, or shell and file text). A cell that does
not parse even then (a syntax error) is redacted line by line, as a last resort.
"""

from __future__ import annotations

import ast
import difflib
import io
import re
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass, field

from nbtrack._redact import syntax
from nbtrack._redact.names import is_secret_name
from nbtrack._redact.strings import Edit, scrub_code_text
from nbtrack._redact.syntax import find_edits
from nbtrack._redact.text import (
    REDACTED,
    redact_text,
    replace_values,
    text_secrets,
)

__all__ = ["RedactedCode", "credential_variables", "redact_cell", "redact_code"]

# Cell magics whose body is shell or file text, never Python: the text rules apply to it.
_TEXT_CELL_MAGICS = frozenset(
    {
        "bash",
        "sh",
        "script",
        "system",
        "sx",
        "perl",
        "ruby",
        "powershell",
        "cmd",
        "sql",
        "writefile",
        "file",
        "html",
        "markdown",
        "latex",
        "javascript",
        "js",
        "svg",
    }
)


@dataclass
class RedactedCode:
    """A cell with its secrets replaced, the secret values found in it (to find them again
    in tracebacks, messages and other cells), and the variables it uses as credentials
    without naming them so (``syntax.credential_variables``: their values are secrets too)."""

    text: str
    secrets: set[str] = field(default_factory=set)
    variables: set[str] = field(default_factory=set)


def redact_code(source: str) -> str:
    """Source code with every credential replaced by ``<redacted>`` (see ``redact_cell``)."""
    return redact_cell(source).text


def redact_cell(source: str) -> RedactedCode:
    """A notebook cell (Python with IPython syntax) with every credential replaced.

    Covers assignments to credential names (also attributes, subscripts such as
    ``os.environ["HF_TOKEN"] = ...``, tuple targets and annotated assignments), keyword
    arguments (``login(token=...)``, ``dict(api_key=...)``), dict entries at any depth,
    ``setdefault``/``putenv``-like calls naming a credential, default arguments, comparisons
    with a credential, strings and comments the text rules match (tokens, URL passwords,
    ``Bearer``), shell commands (``!curl -H "Authorization: ..."``, ``TOKEN=... cmd``) and
    magics (``%env NAME=value``, ``%set_env``).
    """
    if source.lstrip("\n").startswith("%%"):
        return _cell_magic(source)
    # Plain Python is what IPython's transformers would give back unchanged: parse it as it
    # is, and transform only what does not parse.
    tree = _parse(source)
    python: str | None = source
    if tree is None:
        python = _to_python(source)
        tree = _parse(python) if python is not None else None
    if python is None or tree is None:
        return _line_by_line(source)
    edits = find_edits(tree, python, _command_secrets)
    secrets = {value for edit in edits for value in edit.values}
    if python in (source, source + "\n"):
        text = _apply(python, edits)
        text = text if python == source else text[:-1]
    else:
        text = _map_back(source, python, edits)
    # Tokens and URL passwords in anything the tree does not show, and each secret value
    # wherever else in the cell it appears.
    text = _scrub_everywhere(text, secrets)
    return RedactedCode(text, secrets, credential_variables(tree))


def credential_variables(tree: ast.AST) -> set[str]:
    """Variables ``tree`` (a cell as Python) uses as credentials without naming them so
    (``tok = "..."`` then ``login(token=tok)``, ``!curl -H "Authorization: Bearer $tok"``):
    never params, and their values are secrets."""
    return syntax.credential_variables(tree, _command_secrets)


def _to_python(source: str) -> str | None:
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return str(TransformerManager().transform_cell(source))  # type: ignore[no-untyped-call]
    except Exception:  # noqa: BLE001 - IPython could not read it: the last resort reads it
        return None


def _parse(python: str) -> ast.Module | None:
    try:
        return ast.parse(python)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _scrub_everywhere(text: str, secrets: set[str]) -> str:
    return scrub_code_text(replace_values(text, secrets))


# ------------------------------------------------------------------ edits onto text


def _line_starts(text: str) -> list[int]:
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def _apply(text: str, edits: list[Edit]) -> str:
    for edit in sorted(_outermost(edits), key=lambda e: e.start, reverse=True):
        text = text[: edit.start] + edit.replacement + text[edit.end :]
    return text


def _outermost(edits: list[Edit]) -> list[Edit]:
    """Drop edits inside another one (a dict literal inside a redacted assignment)."""
    kept: list[Edit] = []
    for edit in sorted(edits, key=lambda e: (e.start, -e.end)):
        if kept and edit.start < kept[-1].end:
            continue
        kept.append(edit)
    return kept


def _map_back(source: str, python: str, edits: list[Edit]) -> str:
    """Apply edits found in IPython's translation ``python`` to ``source`` as written.

    Lines the translation left alone take their edits at the same place. Lines it rewrote
    (``!cmd``, ``%magic``, a dedented or prompt-stripped cell) hold the same text in another
    form: the secret values found in the translation are replaced where they occur in the
    original lines; where one cannot be found, the redacted translation stands in for them.
    """
    src_lines = source.splitlines(keepends=True)
    py_lines = python.splitlines(keepends=True)
    py_starts = _line_starts(python)
    edits = _outermost(edits)
    out: list[str] = []
    matcher = difflib.SequenceMatcher(None, src_lines, py_lines, autojunk=False)
    opcodes = matcher.get_opcodes()
    placed = 0
    for op, i1, i2, j1, j2 in opcodes:
        block_start, block_end = py_starts[j1], py_starts[j2]
        inside = [e for e in edits if block_start <= e.start and e.end <= block_end]
        placed += len(inside)
        if op == "equal":
            shifted = [e.shifted(-block_start) for e in inside]
            out.append(_apply("".join(py_lines[j1:j2]), shifted))
            continue
        original = "".join(src_lines[i1:i2])
        values = {value for edit in inside for value in edit.values}
        if all(edit.values and all(v in original for v in edit.values) for edit in inside):
            out.append(replace_values(original, values, shortest=1))
        else:
            shifted = [e.shifted(-block_start) for e in inside]
            out.append(_apply("".join(py_lines[j1:j2]), shifted))
    if placed < len(edits):
        # An edit across a rewritten line and a kept one (rare): the redacted translation.
        return _apply(python, edits)
    return "".join(out)


# ------------------------------------------------------------------ IPython syntax


def _command_secrets(kind: str, args: list[str]) -> set[str]:
    """Secrets in the string arguments of IPython's calls: ``system``/``getoutput`` (shell
    commands), ``run_line_magic(name, args)`` and ``run_cell_magic(name, line, body)``."""
    if kind in ("system", "getoutput"):
        return set(text_secrets(args[0])) if args else set()
    if kind == "run_line_magic" and len(args) == 2:
        return _line_magic_secrets(args[0], args[1])
    if kind == "run_cell_magic" and len(args) == 3:
        found = set(text_secrets(args[1]))
        return found | _cell_magic_body(args[0], args[1], args[2]).secrets
    return set()


def _line_magic_secrets(name: str, args: str) -> set[str]:
    found = set(text_secrets(args))
    if name in ("env", "set_env"):
        # `%env NAME value` and `%set_env NAME value`: the value of a credential's name.
        variable, _, value = args.strip().partition(" ")
        from nbtrack._redact.names import is_secret_name

        if "=" not in variable and value.strip() and is_secret_name(variable):
            found.add(value.strip())
    elif args.strip():
        inner = _to_python(args)
        tree = _parse(inner) if inner is not None else None
        if inner is not None and tree is not None:  # %time, %timeit, %prun: Python
            found |= {v for edit in find_edits(tree, inner, _command_secrets) for v in edit.values}
    return found


def _cell_magic(source: str) -> RedactedCode:
    leading = source[: len(source) - len(source.lstrip("\n"))]
    first, newline, body = source[len(leading) :].partition("\n")
    name, _, line = first[2:].partition(" ")
    line_secrets = set(text_secrets(line))
    redacted_line = redact_text(line)
    inner = _cell_magic_body(name, line, body)
    text = f"{leading}%%{name}{' ' if line or first.endswith(' ') else ''}{redacted_line}"
    return RedactedCode(text + newline + inner.text, line_secrets | inner.secrets, inner.variables)


def _cell_magic_body(name: str, line: str, body: str) -> RedactedCode:
    python_file = (
        name in ("writefile", "file")
        and line.strip().split()[-1:] != []
        and (line.strip().split()[-1].endswith(".py"))
    )
    if name in _TEXT_CELL_MAGICS and not python_file:
        return _text_lines(body)
    return redact_cell(body)


def _text_lines(text: str) -> RedactedCode:
    secrets = set(text_secrets(text))
    return RedactedCode(redact_text(text), secrets)


# ------------------------------------------------------------------ the last resort


def _line_by_line(source: str) -> RedactedCode:
    """For code nothing can parse: the values of credentials found in its tokens (however many
    lines a value takes), then each line by the text rules, plus ``name = value`` lines whose
    name is a credential's."""
    spans = _token_secrets(source)
    secrets = {value for _, _, value in spans}
    for start, end, _ in reversed(spans):
        source = source[:start] + repr(REDACTED) + source[end:]
    lines = []
    for line in source.split("\n"):
        secrets.update(text_secrets(line))
        lines.append(_redact_assignment_line(redact_text(line)))
    return RedactedCode("\n".join(lines), secrets - {REDACTED})


_OPENING, _CLOSING = frozenset("([{"), frozenset(")]}")
# What makes the value after a credential's name its value: an assignment, an annotation or
# an entry, a walrus, a comparison.
_NAMING_OPERATORS = frozenset({"=", ":", ":=", "==", "!="})


def _token_secrets(source: str) -> list[tuple[int, int, str]]:
    """(start, end, value) of each string or number that is a credential's value, read from
    the tokens of code that does not parse (a missing bracket, a stray character): what
    follows a credential's name and ``=``, ``:``, ``:=``, ``==`` or ``!=``, or a string naming
    one and ``,`` or ``:``.
    A value ends where its statement does, or for an argument or an entry at the next ``,`` or
    closing bracket; a line break ends it once it has begun (a bracket left open by the typo
    must not take the rest of the cell with it)."""
    tokens = _tokens(source)
    starts = [0]
    for line in source.split("\n"):
        starts.append(starts[-1] + len(line) + 1)
    found: dict[int, tuple[int, int, str]] = {}
    depth = 0
    significant = [t for t in tokens if t.type not in (tokenize.NL, tokenize.COMMENT)]
    for index, token in enumerate(significant[:-1]):
        operator = significant[index + 1]
        if token.type == tokenize.OP:
            depth += token.string in _OPENING
            depth -= token.string in _CLOSING and depth > 0
        start = starts[token.start[0] - 1] + token.start[1]
        names_one = start not in found and (  # a value found secret names nothing
            (
                token.type == tokenize.NAME
                and operator.string in _NAMING_OPERATORS
                and is_secret_name(token.string)
            )
            or (
                token.type == tokenize.STRING
                and operator.string in (",", ":")
                and is_secret_name(_string_value(token.string))
            )
        )
        if names_one:
            whole_statement = depth == 0 and token.type == tokenize.NAME
            for value in _value_tokens(tokens, operator, whole_statement):
                begin = starts[value.start[0] - 1] + value.start[1]
                end = starts[value.end[0] - 1] + value.end[1]
                found[begin] = (begin, end, _string_value(value.string))
    return sorted(found.values())


def _tokens(source: str) -> list[tokenize.TokenInfo]:
    """The tokens of ``source`` up to where the tokenizer gives up."""
    tokens: list[tokenize.TokenInfo] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            tokens.append(token)
    except (tokenize.TokenError, SyntaxError):
        pass
    return tokens


def _value_tokens(
    tokens: list[tokenize.TokenInfo], operator: tokenize.TokenInfo, whole_statement: bool
) -> Iterator[tokenize.TokenInfo]:
    """The strings and numbers of the value after ``operator``."""
    depth = 0
    begun = False
    for token in tokens[tokens.index(operator) + 1 :]:
        if token.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
            return
        if token.type == tokenize.NL:
            if begun and depth == 0:
                return
            continue
        if token.type == tokenize.OP:
            if token.string in _OPENING:
                depth += 1
            elif token.string in _CLOSING:
                if depth == 0:
                    return
                depth -= 1
            elif token.string == "," and depth == 0 and not whole_statement:
                return
        elif token.type in (tokenize.STRING, tokenize.NUMBER):
            yield token
        if token.type != tokenize.COMMENT:
            begun = True


def _string_value(literal: str) -> str:
    """What a string token holds (its text, for an f-string or one Python cannot read)."""
    try:
        value = ast.literal_eval(literal)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return literal
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


_ASSIGN_LINE = re.compile(
    r"^(?P<lead>\s*(?:%env\s+|%set_env\s+|export\s+|!export\s+)?)"
    r"(?P<name>[A-Za-z_][\w.\[\]'\"]*)(?P<eq>\s*[:=]\s*|\s+)(?P<value>\S.*)$"
)


def _redact_assignment_line(line: str) -> str:
    """``name = value`` (or ``%env NAME value``) with the value hidden when the name is a
    credential's: the last resort for code that does not parse."""
    match = _ASSIGN_LINE.match(line)
    if match and is_secret_name(re.sub(r"[\[\]'\"]", "_", match["name"])):
        return f"{match['lead']}{match['name']}{match['eq']}{REDACTED}"
    return line
