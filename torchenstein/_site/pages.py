"""The pages the site makes from the course order: lesson pages, their navigation and the course map.

Examples:
    >>> from torchenstein.course import find_lesson
    >>> page = lesson_page(find_lesson("torchenstein.transformers.attention"), ["attention"])
    >>> page.splitlines()[0]
    '::: torchenstein.transformers.attention'
"""

from __future__ import annotations

from torchenstein.course import COURSE, Lesson, Part

APPARATUS_HEADING = "The apparatus"


def part_label(part: Part) -> str:
    """The part's name in the navigation: ``Part 1 · Tensors``.

    Examples:
        >>> part_label(COURSE[1])
        'Part 1 · Tensors'
    """
    return f"Part {part.number} · {part.title.split(':')[0]}"


def lesson_page(lesson: Lesson, members: list[str]) -> str:
    """The Markdown of a lesson page: the lesson text, then each documented object in source order.

    Args:
        lesson: the lesson.
        members: the names of the module's documented objects, in source order.
    """
    out = [
        f"::: {lesson.module}",
        "    options:",
        "      members: false",
        "      show_root_heading: false",
        "      show_root_toc_entry: false",
        "      heading_level: 1",
        "",
        '!!! tip "Run this lesson yourself"',
        f"    Every example on this page, in order, is in the notebook [`{lesson.name}.ipynb`]({lesson.name}.ipynb).",
        "    Open it with the course installed (see [Running the examples](../../running-examples.md)) and run",
        "    it top to bottom; Dr. Hammer's traps print their errors instead of stopping it.",
        "",
    ]
    if members:
        out += [
            f"## {APPARATUS_HEADING} {{ #apparatus }}",
            "",
            '<p class="tl-apparatus-intro" markdown>Every function and class of this lesson, in the order the '
            "module defines them. Each heading links to its lines in the [annotated source](source.md), "
            "where the comments are set as prose beside the code.</p>",
            "",
        ]
        out += [f"::: {lesson.module}.{name}\n" for name in members]
    return "\n".join(out)


def navigation() -> list[dict]:
    """The site's navigation: the welcome pages, then each part that has lessons.

    Examples:
        >>> nav = navigation()
        >>> list(nav[2])[0]
        'Part 1 · Tensors'
    """
    nav: list[dict] = [
        {
            "Welcome": [
                {"The course": "index.md"},
                {"The origin story": "origin-story.md"},
                {"Course map": "course-map.md"},
                {"Running the examples": "running-examples.md"},
                {"The laboratory bench": "lab.md"},
            ]
        }
    ]
    for part in COURSE:
        if part.lessons or part.labs:
            entries = [{lesson.title: lesson.page} for lesson in part.lessons]
            entries += [{lab.title: lab.page} for lab in part.labs]
            nav.append({part_label(part): entries})
    return nav


def course_path() -> str:
    """The Markdown list of parts for the home page, each linking to its first lesson if it has one.

    Examples:
        >>> course_path().splitlines()[1].startswith("- **[Part 1 · Tensors](tensors/creation/index.md)**")
        True
    """
    out = []
    for part in COURSE:
        label = part_label(part)
        heading = f"[{label}]({part.lessons[0].page})" if part.lessons else label
        out.append(f"- **{heading}**: {part.summary}")
    return "\n".join(out)


def course_map() -> str:
    """The Markdown of the course map: every part, what it covers, and the lessons written so far.

    Examples:
        >>> "## Part 4 · Transformers" in course_map()
        True
    """
    written = sum(len(part.lessons) for part in COURSE)
    out = [
        "# Course map",
        "",
        '!!! torchenstein "The Professor unrolls the blueprints"',
        f"    {len(COURSE)} parts lead from a single tensor to a Transformer and a Diffusion model. "
        f"{written} lessons are open in the laboratory today; each one links below. Follow them in order "
        "or jump to the part that itches.",
        "",
    ]
    for part in COURSE:
        out += [f"## {part_label(part)}", "", f"**{part.title}.** {part.summary}", ""]
        if part.lessons:
            for number, lesson in enumerate(part.lessons, start=1):
                out.append(f"{number}. [{lesson.title}]({lesson.page}): {lesson.summary}")
            out.append("")
        for lab in part.labs:
            out += [f"- [{lab.title}]({lab.page}): {lab.summary}", ""]
        out += ["The part covers " + ", ".join(part.topics) + ".", ""]
    return "\n".join(out)
