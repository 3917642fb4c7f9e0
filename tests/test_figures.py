"""Figures: drawn as SVG, cached by what they depend on, and written by one command.

The strict site build (tests/test_site.py) draws every figure of the course and fails on one that is not
a Figure or holds no axes, so no test here draws them all again.
"""

from __future__ import annotations

import importlib

import pytest

from torchenstein import figures
from torchenstein.course import find_lesson, lessons
from torchenstein.figures import FigureBoard, main, plotting_functions, render_svg

PLOTS = [
    (lesson.module, name, plot)
    for lesson in lessons()
    for name, plot in plotting_functions(importlib.import_module(lesson.module)).items()
]
# A figure that draws the same picture every time (some figures show timings measured as they are drawn).
STEADY = next(entry for entry in PLOTS if entry[0] == "torchenstein.nn.rmsnorm")


def test_render_svg_refuses_what_is_not_a_figure():
    with pytest.raises(TypeError, match="must return a matplotlib Figure, got int"):
        render_svg(lambda: 3)


def test_svg_is_the_same_every_time():
    _, _, plot = STEADY
    assert render_svg(plot) == render_svg(plot)


def test_one_command_writes_a_lessons_figures(tmp_path, capsys):
    module = STEADY[0]
    assert main(["--out", str(tmp_path), module]) == 0
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.svg")}
    expected = {f"{m.split('.')[1]}/{m.split('.')[2]}/{n}.svg" for m, n, _ in PLOTS if m == module}
    assert written == expected


def test_an_unknown_lesson_is_named(capsys):
    assert main(["torchenstein.nowhere"]) == 2
    assert "torchenstein.nowhere" in capsys.readouterr().err


def test_a_changed_lesson_gets_a_new_figure_and_an_unchanged_one_is_reused(tmp_path, monkeypatch):
    lesson = find_lesson(STEADY[0])
    board = FigureBoard(tmp_path, workers=0)
    board.start([lesson])
    first = board.figures(lesson)
    board.close()
    assert (board.drawn, board.reused) == (len(first), 0)

    again = FigureBoard(tmp_path, workers=0)
    again.start([lesson])
    assert again.figures(lesson) == first
    assert (again.drawn, again.reused) == (0, len(first))

    # An edit of prose (a comment, a docstring) in a module the lesson imports redraws nothing...
    real_path = figures.module_path
    source = real_path("torchenstein.lab").read_text(encoding="utf-8")
    edited = tmp_path / "lab_edited.py"
    edited.write_text(source.replace('"""', '"""Edited. ', 1) + "\n# an edit\n")
    monkeypatch.setattr(figures, "module_path", lambda m: edited if m == "torchenstein.lab" else real_path(m))
    assert "torchenstein.lab" in figures.package_imports(real_path(lesson.module).read_text(encoding="utf-8"))
    prose_only = FigureBoard(tmp_path, workers=0)
    prose_only.start([lesson])
    assert prose_only.figures(lesson) == first
    assert (prose_only.drawn, prose_only.reused) == (0, len(first))

    # ... but an edit of its code changes the key, so the figures are drawn again.
    edited.write_text(source + "\nEDITED = True\n")
    third = FigureBoard(tmp_path, workers=0)
    third.start([lesson])
    assert third.figures(lesson) == first
    third.close()
    assert (third.drawn, third.reused) == (len(first), 0)
    # The cache keeps one drawing per lesson: the old one is gone.
    assert len(list((tmp_path / lesson.module).iterdir())) == 1


def test_a_plot_that_draws_nothing_is_refused():
    from torchenstein.lab import new_figure

    with pytest.raises(ValueError, match="no axes"):
        render_svg(lambda: new_figure()[0].__class__())
