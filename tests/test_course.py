"""The course order is complete and every lesson keeps the house style a page depends on."""

from __future__ import annotations

import importlib
import re

import pytest

from torchenstein.course import (
    COURSE,
    find_lesson,
    is_lesson_source,
    lesson_modules_in_package,
    lesson_text,
    lessons,
    module_path,
)
from torchenstein.figures import package_imports, plotting_functions

LESSONS = lessons()


def lesson_docstring(module: str) -> str:
    return lesson_text(module_path(module).read_text(encoding="utf-8"))


def test_every_lesson_module_is_in_the_course_order():
    assert set(lesson_modules_in_package()) == {lesson.module for lesson in LESSONS}


def test_every_entry_points_to_a_lesson_module():
    for lesson in LESSONS:
        assert is_lesson_source(module_path(lesson.module).read_text(encoding="utf-8")), lesson.module


def test_a_missing_module_is_reported_by_name():
    with pytest.raises(ModuleNotFoundError, match="torchenstein.nowhere"):
        module_path("torchenstein.nowhere")
    with pytest.raises(KeyError, match="torchenstein.nowhere"):
        find_lesson("torchenstein.nowhere")


def test_parts_are_numbered_in_order_and_hold_their_own_lessons():
    assert [part.number for part in COURSE] == list(range(len(COURSE)))
    assert len({part.slug for part in COURSE}) == len(COURSE)
    for part in COURSE:
        assert part.title and part.summary and part.topics
        for lesson in part.lessons:
            assert lesson.part_slug == part.slug, f"{lesson.module} is filed under part {part.slug!r}"
    assert len({lesson.module for lesson in LESSONS}) == len(LESSONS)
    assert len({lesson.title for lesson in LESSONS}) == len(LESSONS)


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)
class TestLessonShape:
    def test_opens_with_a_title_and_the_professor(self, lesson):
        doc = lesson_docstring(lesson.module)
        first, *rest = doc.splitlines()
        assert first.startswith("# ") and len(first) > 4
        assert not any(line.startswith("# ") for line in rest), "the title appears once"
        assert '!!! torchenstein "' in doc
        assert "**You will learn to**" in doc

    def test_has_traps_and_challenges(self, lesson):
        sections = re.findall(r"^## (.+)$", lesson_docstring(lesson.module), re.M)
        assert "Dr. Hammer's traps" in sections
        assert "Challenges" in sections

    def test_docstring_is_raw_so_latex_survives(self, lesson):
        doc = lesson_docstring(lesson.module)
        assert not re.search(r"[\a\b\f\v]", doc), "a plain string turned a LaTeX backslash into a control character"

    def test_examples_sit_in_closed_pycon_fences(self, lesson):
        lines = lesson_docstring(lesson.module).splitlines()
        fence = None
        for number, line in enumerate(lines):
            stripped = line.strip()
            if stripped.startswith("```"):
                if fence is None:
                    fence = stripped
                else:
                    if fence == "```pycon":
                        assert not lines[number - 1].strip(), f"line {number}: leave a blank line before the closing fence"
                    fence = None
            elif stripped.startswith(">>>"):
                assert fence == "```pycon", f"line {number}: '>>>' outside a ```pycon fence"
        assert fence is None, "an unclosed fence"

    def test_shows_every_figure_it_draws(self, lesson):
        doc = lesson_docstring(lesson.module)
        for name in plotting_functions(importlib.import_module(lesson.module)):
            assert f"]({name}.svg)" in doc, f"{name} draws a figure the lesson never shows"

    def test_says_nothing_unfinished(self, lesson):
        text = module_path(lesson.module).read_text(encoding="utf-8")
        # Code may name a thing "placeholder" (an FX graph's inputs are): prose may not. So examples (from a
        # >>> line to the next blank line) and inline code are left out.
        prose = re.sub(r"^\s*>>>.*?(?=^\s*$)", "", text, flags=re.S | re.M)
        prose = re.sub(r"``[^`]*``|`[^`\n]*`", "", prose)
        assert not re.search(r"\b(TODO|TBD|FIXME|coming soon|placeholder|lorem ipsum)\b", prose, re.I)


def test_no_lesson_imports_a_lesson_taught_after_it():
    """A lesson relies only on what came before it: its imports of the package point backwards."""
    order = {lesson.module: position for position, lesson in enumerate(lessons())}
    forward = [
        f"{lesson.module} imports {imported}, taught later"
        for lesson in lessons()
        for imported in sorted(package_imports(module_path(lesson.module).read_text(encoding="utf-8")))
        if order.get(imported, -1) > order[lesson.module]
    ]
    assert not forward, forward
