"""Every plotting function draws a figure, and one command writes them all."""

from __future__ import annotations

import importlib

import pytest
from matplotlib.figure import Figure

from torchenstein.course import find_lesson, lessons, module_path
from torchenstein.figures import cached_lesson_figures, main, plotting_functions, render_svg

PLOTS = [
    (lesson.module, name, plot)
    for lesson in lessons()
    for name, plot in plotting_functions(importlib.import_module(lesson.module)).items()
]


@pytest.mark.parametrize(("module", "name", "plot"), PLOTS, ids=[f"{m.rsplit('.', 1)[1]}.{n}" for m, n, _ in PLOTS])
def test_every_plotting_function_draws_a_figure(module, name, plot):
    figure = plot()
    assert isinstance(figure, Figure)
    assert figure.axes, f"{module}.{name} drew no axes"


def test_render_svg_refuses_what_is_not_a_figure():
    with pytest.raises(TypeError, match="must return a matplotlib Figure, got int"):
        render_svg(lambda: 3)


def test_svg_is_the_same_every_time():
    _, _, plot = PLOTS[0]
    assert render_svg(plot) == render_svg(plot)


def test_one_command_writes_a_lessons_figures(tmp_path, capsys):
    module = PLOTS[0][0]
    assert main(["--out", str(tmp_path), module]) == 0
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.svg")}
    expected = {f"{m.split('.')[1]}/{m.split('.')[2]}/{n}.svg" for m, n, _ in PLOTS if m == module}
    assert written == expected


def test_an_unknown_lesson_is_named(capsys):
    assert main(["torchenstein.nowhere"]) == 2
    assert "torchenstein.nowhere" in capsys.readouterr().err


def test_figures_are_drawn_again_only_when_the_source_changes():
    lesson = find_lesson(PLOTS[0][0])
    source = module_path(lesson.module).read_text(encoding="utf-8")
    first = cached_lesson_figures(lesson, source)
    assert cached_lesson_figures(lesson, source) is first
    edited = cached_lesson_figures(lesson, source + "\n# an edit\n")
    assert edited is not first and edited == first
