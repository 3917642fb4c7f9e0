r"""Each lesson as a Jupyter notebook: its text as Markdown cells, its examples as code cells, in order.

A reader who would rather experiment than read downloads the notebook from the lesson page and runs it
top to bottom. Nothing is lost on the way: admonitions become block quotes, cross-references become
code, figures become the cells that draw them, and an example that fails on purpose (one of
Dr. Hammer's traps) prints its error instead of stopping the notebook.

Examples:
    >>> notebook = lesson_notebook("# Title\n\nText.\n\n```pycon\n>>> 1 + 1\n2\n\n```\n")
    >>> [cell["cell_type"] for cell in notebook["cells"]]
    ['markdown', 'code']
    >>> notebook["cells"][1]["source"]
    '1 + 1'
"""

from __future__ import annotations

import doctest
import functools
import json
import re
import textwrap

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```pycon[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
_ADMONITION = re.compile(r'^(?:!!!|\?\?\?\+?) (?P<kind>[\w-]+)(?: "(?P<title>[^"]*)")?[ \t]*\n(?P<body>(?:(?:[ \t]{4}.*)?\n)*)', re.M)
_REFERENCE = re.compile(r"\[([^\[\]]+)\]\[[\w.]+\]")
_FIGURE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<name>plot_\w+)\.svg\)[ \t]*$", re.M)


def _markdown(text: str) -> str:
    """Lesson Markdown as Jupyter reads it: admonitions as block quotes, references as plain text."""

    def quote(match: re.Match) -> str:
        title = match["title"] or match["kind"].capitalize()
        body = textwrap.dedent(match["body"]).strip("\n")
        lines = [f"**{title}**", "", *body.splitlines()]
        return "\n".join(f"> {line}".rstrip() for line in lines) + "\n"

    text = _ADMONITION.sub(quote, text)
    # An admonition that holds an example goes on after it, still indented: the quote goes on too.
    text = re.sub(r"^ {4}(.*)$", lambda m: f"> {m[1]}".rstrip(), text, flags=re.M)
    return _REFERENCE.sub(r"\1", text).strip("\n")


def _code(body: str) -> list[str]:
    """The examples of one ``pycon`` fence as code cells; an example that raises on purpose is caught."""
    cells, pending = [], []
    for example in doctest.DocTestParser().get_examples(textwrap.dedent(body)):
        source = example.source.rstrip("\n")
        if example.exc_msg is None:
            pending.append(source)
            continue
        if pending:
            cells.append("\n".join(pending))
            pending = []
        indented = textwrap.indent(source, "    ")
        cells.append(
            "# This example fails on purpose; the error is the lesson.\n"
            f"try:\n{indented}\nexcept Exception as error:\n"
            '    print(f"{type(error).__name__}: {error}")'
        )
    if pending:
        cells.append("\n".join(pending))
    return cells


def _cell(kind: str, source: str) -> dict:
    cell = {"cell_type": kind, "metadata": {}, "source": source}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def lesson_notebook(text: str, module: str | None = None) -> dict:
    """The notebook (nbformat 4) of a lesson text.

    Args:
        text: the lesson's module docstring.
        module: the lesson's module, from which a figure's plotting function is imported.

    Returns:
        The notebook as a dictionary, ready for ``json.dumps``.
    """
    cells: list[dict] = []

    def prose(chunk: str) -> None:
        position = 0
        for figure in _FIGURE.finditer(chunk):
            if markdown := _markdown(chunk[position : figure.start()]):
                cells.append(_cell("markdown", markdown))
            where = f"from {module} import {figure['name']}\n" if module else ""
            cells.append(_cell("code", f"{where}{figure['name']}()  # {figure['alt']}"))
            position = figure.end()
        if markdown := _markdown(chunk[position:]):
            cells.append(_cell("markdown", markdown))

    position = 0
    for fence in _FENCE.finditer(text):
        prose(text[position : fence.start()])
        cells.extend(_cell("code", source) for source in _code(fence["body"]))
        position = fence.end()
    prose(text[position:])
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


@functools.lru_cache(maxsize=256)
def notebook_json(text: str, module: str | None = None) -> str:
    """The notebook of a lesson text, serialised as a ``.ipynb`` file holds it (remembered: every
    rebuild of ``mkdocs serve`` asks for every lesson's notebook)."""
    return json.dumps(lesson_notebook(text, module), indent=1, ensure_ascii=False) + "\n"
