"""Long signatures wrapped in this process, instead of by a formatter started once per signature.

mkdocstrings shows a signature too long for one line as Black or Ruff would format it, and with Ruff it
starts ``ruff format`` as a new process for every such signature: a couple of hundred of them in the
course, seconds of a cold build spent starting processes. A signature is one simple shape, so the site
wraps it here the way those formatters do: the parameters on one indented line when they fit, else one
per line with a trailing comma.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_DEF = re.compile(r"def (?P<name>\w+)\((?P<params>.*)\)(?P<returns> -> .+)?: pass", re.S)
_OPEN, _CLOSE = "([{", ")]}"


def _outside_strings(code: str) -> Iterator[tuple[int, str, int]]:
    """Each character of ``code`` outside string literals, with its index and its bracket depth before it."""
    depth, quote = 0, ""
    for i, char in enumerate(code):
        if quote:
            if char == quote and code[i - 1] != "\\":
                quote = ""
        elif char in "'\"":
            quote = char
        else:
            yield i, char, depth
            depth += (char in _OPEN) - (char in _CLOSE)


def split_parameters(params: str) -> list[str]:
    """Cut a parameter list at its top-level commas (not those inside brackets or strings).

    Examples:
        >>> split_parameters("a: int, b: dict[str, int] = {'x': 1, 'y': 2}, *, c='a,b'")
        ['a: int', "b: dict[str, int] = {'x': 1, 'y': 2}", '*', "c='a,b'"]
        >>> split_parameters("")
        []
    """
    cuts = [i for i, char, depth in _outside_strings(params) if char == "," and depth == 0]
    bounds = zip([-1, *cuts], [*cuts, len(params)], strict=True)  # (comma before, comma after) of each part
    parts = [params[start + 1 : stop].strip() for start, stop in bounds]
    return [part for part in parts if part]


def _matching_close(code: str, open_at: int) -> int:
    """The index of the bracket that closes the one at ``open_at`` (-1 if it never closes)."""
    for i, char, depth in _outside_strings(code[open_at:]):
        if char in _CLOSE and depth == 1:
            return open_at + i
    return -1


def _double_quoted(text: str) -> str:
    """Single-quoted strings written with double quotes, as the formatters prefer, where nothing inside changes."""
    return _SINGLE_QUOTED.sub(lambda m: f'"{m[1]}"', text)


_POWER = re.compile(r"\b([\w.]+) \*\* ([\w.]+)\b")
_SINGLE_QUOTED = re.compile(r"'([^'\"\\\n]*)'")


def _wrapped(head: str, items: str, tail: str, line_length: int, *, explode: bool = False) -> list[str]:
    """``head`` ending in an open bracket, the items inside, then ``tail`` from the closing bracket on.

    The items share one indented line where they fit, except a lone item or the items of a literal
    collection (``explode``): those go one per line, each with its comma.
    """
    params = split_parameters(items)
    one_line = "    " + ", ".join(params)
    if not explode and len(params) > 1 and len(one_line) <= line_length:
        return [head, one_line, tail]
    return [head, *(f"    {param}," for param in params), tail]


def wrap_signature(code: str, line_length: int) -> str:
    """Format a long ``def name(params) -> returns: pass`` or ``NAME = <brackets>`` as Ruff and Black would.

    Anything else comes back as it is.

    Examples:
        >>> print(wrap_signature("def f(alpha: int, beta: int = 2) -> int: pass", 30), end="")
        def f(
            alpha: int, beta: int = 2
        ) -> int:
            pass
        >>> print(wrap_signature("def f(alpha: int, beta: str = 'b') -> int: pass", 20), end="")
        def f(
            alpha: int,
            beta: str = "b",
        ) -> int:
            pass
        >>> print(wrap_signature("SIZES = {'small': 1, 'large': 2}", 20), end="")
        SIZES = {
            "small": 1,
            "large": 2,
        }
    """
    code = _POWER.sub(r"\1**\2", _double_quoted(code.strip()))
    if "\n" in code or len(code) <= line_length:
        return code
    match = _DEF.fullmatch(code)
    if match is not None:
        footer = f"){match['returns'] or ''}:"
        return "\n".join([*_wrapped(f"def {match['name']}(", match["params"], footer, line_length), "    pass"]) + "\n"
    name, equals, value = code.partition(" = ")
    opening = next((i for i, char in enumerate(value) if char in _OPEN), -1)
    if not equals or opening < 0 or _matching_close(value, opening) != len(value) - 1:
        return code
    head, items = f"{name} = {value[: opening + 1]}", value[opening + 1 : -1]
    lines = _wrapped(head, items, value[-1], line_length, explode=opening == 0)
    return "\n".join(lines) + "\n"


def install() -> None:
    """Make mkdocstrings' Python handler wrap signatures with `wrap_signature` (where it has that hook)."""
    try:
        from mkdocstrings_handlers.python._internal import rendering
    except ImportError:  # pragma: no cover - another layout of the handler: it keeps its own formatter
        return
    if hasattr(rendering, "_get_formatter"):
        rendering._get_formatter = lambda: wrap_signature
