"""Figures: drawn as SVG, cached by what they depend on, written by one command, and shipped.

The course ships every figure on its shelf, ``figures/``, with the provenance of each lesson's: the tests
here fail when a lesson's code changed and its figures were not drawn again. The strict site build
(tests/test_site.py) draws every figure the shelf does not hold for this code and these versions, and
fails on one that is not a Figure or holds no axes.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from torchenstein import figures
from torchenstein.course import find_lesson, lessons
from torchenstein.figures import (
    FigureBoard,
    FigureShelf,
    code_digest,
    main,
    plotting_functions,
    provenance,
    render_svg,
)

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


SHELF = FigureShelf(Path(__file__).resolve().parents[1] / "figures")
DRAWING = [lesson for lesson in lessons() if SHELF.files(lesson)]
# The digests of every module's code, kept across the tests below as a build keeps them: each lesson
# imports a chain of course modules, and parsing every chain again for every lesson takes seconds.
CODE_DIGESTS: dict[str, list] = {}


def test_the_shelf_holds_the_figures_of_every_lesson_that_draws_and_no_other():
    assert set(SHELF.record()) == {lesson.module for lesson in DRAWING}
    missing = [str(path) for lesson in DRAWING for path in SHELF.files(lesson) if not path.is_file()]
    assert not missing, f"run `torchenstein figures` to draw {missing}"
    shelved = {path.relative_to(SHELF.folder) for path in SHELF.folder.rglob("*.svg")}
    assert shelved == {path.relative_to(SHELF.folder) for lesson in DRAWING for path in SHELF.files(lesson)}


@pytest.mark.parametrize("lesson", DRAWING, ids=lambda lesson: lesson.name)
def test_each_lessons_shelved_figures_were_drawn_from_its_code_as_it_is(lesson):
    drawn_from = SHELF.record()[lesson.module]["code"]
    assert drawn_from == code_digest(lesson.module, CODE_DIGESTS), (
        f"{lesson.module}'s code changed since its figures were drawn: run `torchenstein figures`"
    )


def test_a_fresh_clone_draws_no_figure_the_shelf_holds(tmp_path):
    record = SHELF.record()
    drawn_with = {entry["versions"] for entry in record.values()}
    if drawn_with != {provenance(DRAWING[0].module, CODE_DIGESTS)["versions"]}:
        pytest.skip(f"the shelf was drawn with {drawn_with}, not this machine's matplotlib and torch")
    board = FigureBoard(tmp_path / "no-cache-yet", shelf=SHELF.folder)
    board.start(lessons())
    shown = {lesson.module: dict(board.figures(lesson)) for lesson in DRAWING}
    board.close()
    assert board.drawn == 0 and board.reused == sum(len(figs) for figs in shown.values())
    for lesson in DRAWING:
        assert shown[lesson.module] == {path.name: path.read_bytes() for path in SHELF.files(lesson)}


def test_the_command_draws_only_what_its_shelf_lacks(tmp_path, capsys):
    lesson = find_lesson(STEADY[0])
    assert main(["--out", str(tmp_path), lesson.module]) == 0
    assert capsys.readouterr().out.split() == [str(path) for path in FigureShelf(tmp_path).files(lesson)]
    assert main(["--out", str(tmp_path), lesson.module]) == 0
    assert "1 lesson already had its figures" in capsys.readouterr().out
    assert FigureShelf(tmp_path).holds(lesson)
