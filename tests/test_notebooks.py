"""Each lesson becomes a notebook that holds every example of its text, in order, and runs top to bottom."""

from __future__ import annotations

import doctest
import json
import os
import re
import textwrap

import matplotlib
import pytest
import torch

from torchenstein._site.notebooks import lesson_notebook, notebook_json
from torchenstein.course import find_lesson, lesson_text, lessons, module_path

LESSONS = lessons()


def text_of(module: str) -> str:
    return lesson_text(module_path(module).read_text(encoding="utf-8"))


def code_cells(notebook: dict) -> list[str]:
    return [cell["source"] for cell in notebook["cells"] if cell["cell_type"] == "code"]


def test_admonitions_quote_references_flatten_and_figures_draw():
    text = (
        '# Title\n\n!!! torchenstein "The Professor speaks"\n    Behold [`attention`][torchenstein.x.attention].\n\n'
        "![A map](plot_map.svg)\n\nThe end.\n"
    )
    cells = lesson_notebook(text, "torchenstein.x")["cells"]
    assert [c["cell_type"] for c in cells] == ["markdown", "code", "markdown"]
    assert cells[0]["source"] == "# Title\n\n> **The Professor speaks**\n>\n> Behold `attention`."
    assert cells[1]["source"] == "from torchenstein.x import plot_map\nplot_map()  # A map"
    assert cells[2]["source"] == "The end."


def test_an_example_that_fails_on_purpose_prints_its_error_instead_of_stopping():
    text = "```pycon\n>>> a = 1\n>>> 1 / 0\nTraceback (most recent call last):\n...\nZeroDivisionError: division by zero\n>>> a + 1\n2\n\n```\n"
    cells = code_cells(lesson_notebook(text))
    assert cells[0] == "a = 1"
    assert cells[1].startswith("# This example fails on purpose") and "    1 / 0\n" in cells[1]
    assert cells[2] == "a + 1"
    exec(compile(cells[1], "cell", "exec"), {})  # prints, does not raise


def test_an_admonition_that_holds_an_example_stays_one_quote():
    text = '!!! hammer "A trap"\n    Before.\n\n    ```pycon\n    >>> 1\n    1\n\n    ```\n\n    After.\n'
    cells = lesson_notebook(text)["cells"]
    assert [c["cell_type"] for c in cells] == ["markdown", "code", "markdown"]
    assert cells[0]["source"] == "> **A trap**\n>\n> Before."
    assert cells[2]["source"] == "> After."


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)
def test_every_example_of_the_lesson_is_in_its_notebook_in_order(lesson):
    text = text_of(lesson.module)
    notebook = json.loads(notebook_json(text, lesson.module))
    assert notebook["nbformat"] == 4 and notebook["cells"][0]["cell_type"] == "markdown"
    sources = "\n".join(code_cells(notebook))
    position = 0
    for example in doctest.DocTestParser().get_examples(text):
        source = example.source.rstrip("\n")
        # An example that fails on purpose sits indented inside the try that catches its error.
        found = sources.find(source if example.exc_msg is None else textwrap.indent(source, "    "), position)
        assert found >= 0, f"example missing or out of order: {example.source!r}"
        position = found
    prose = "\n".join(c["source"] for c in notebook["cells"] if c["cell_type"] == "markdown")
    prose = re.sub(r"`[^`\n]*`", "", prose)  # inline code may show the syntax it explains
    assert "!!! " not in prose and "][torchenstein." not in prose and ">>>" not in prose


@pytest.mark.parametrize(
    "module",
    ["torchenstein.tensors.creation", "torchenstein.nn.positional", "torchenstein.transformers.attention"],
)
def test_a_notebook_runs_top_to_bottom(module, monkeypatch, capsys):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    matplotlib.use("Agg")
    torch.manual_seed(0)
    namespace: dict = {}
    lesson = find_lesson(module)
    for source in code_cells(lesson_notebook(text_of(lesson.module), lesson.module)):
        exec(compile(source, f"{lesson.name}.ipynb", "exec"), namespace)
    assert os.environ["MPLBACKEND"] == "Agg"
