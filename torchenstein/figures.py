"""Every figure of the course, drawn from the lessons' own plotting functions.

A lesson's plotting function is a public function named ``plot_<what>`` that returns a matplotlib
``Figure``. The site draws each one when it is built and the lesson shows it as ``plot_<what>.svg``
beside its page. To draw them all yourself:

    python -m torchenstein.figures --out figures/

```pycon
>>> from torchenstein.figures import plotting_functions
>>> import torchenstein.transformers.attention as lesson
>>> all(name.startswith("plot_") for name in plotting_functions(lesson))
True

```
"""

from __future__ import annotations

import argparse
import importlib
import io
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType

from torchenstein.course import Lesson, find_lesson, lessons


def plotting_functions(module: ModuleType) -> dict[str, Callable]:
    """The plotting functions a lesson module defines itself, by name, in source order."""
    return {
        name: obj
        for name, obj in vars(module).items()
        if name.startswith("plot_") and callable(obj) and getattr(obj, "__module__", None) == module.__name__
    }


def render_svg(plot: Callable) -> bytes:
    """Call a plotting function with its defaults and return its figure as SVG.

    Raises:
        TypeError: if the function does not return a matplotlib ``Figure``.
    """
    import matplotlib
    from matplotlib.figure import Figure

    figure = plot()
    if not isinstance(figure, Figure):
        raise TypeError(f"{plot.__qualname__} must return a matplotlib Figure, got {type(figure).__name__}")
    buffer = io.BytesIO()
    # A fixed hash salt and no date keep the SVG identical from one build to the next.
    with matplotlib.rc_context({"svg.hashsalt": "torchenstein"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def lesson_figures(lesson: Lesson, *, reload: bool = False) -> Iterator[tuple[str, bytes]]:
    """Draw every figure of one lesson: yields ``(file name, SVG)`` pairs such as ``plot_x.svg``.

    Args:
        lesson: the lesson to draw.
        reload: re-import the module first, so a running ``mkdocs serve`` picks up edits.
    """
    module = importlib.import_module(lesson.module)
    if reload:
        module = importlib.reload(module)
    for name, plot in plotting_functions(module).items():
        yield f"{name}.svg", render_svg(plot)


# Drawing every figure takes most of a site build. While `mkdocs serve` rebuilds on each edit, a lesson's
# figures are drawn again only when its source has changed. (MkDocs reloads its hooks on every rebuild,
# so the cache lives here, in a module that stays imported.)
_CACHE: dict[str, tuple[str, list[tuple[str, bytes]]]] = {}


def cached_lesson_figures(lesson: Lesson, source: str) -> list[tuple[str, bytes]]:
    """The figures of a lesson, drawn again only when ``source``, the lesson's source text, has changed.

    Examples:
        >>> from torchenstein.course import find_lesson, module_path
        >>> lesson = find_lesson("torchenstein.tensors.metamorphosis")
        >>> source = module_path(lesson.module).read_text()
        >>> cached_lesson_figures(lesson, source) is cached_lesson_figures(lesson, source)
        True
    """
    cached = _CACHE.get(lesson.module)
    if cached is None or cached[0] != source:
        cached = (source, list(lesson_figures(lesson, reload=cached is not None)))
        _CACHE[lesson.module] = cached
    return cached[1]


def main(argv: Sequence[str] | None = None) -> int:
    """Write the figures of the given lessons (all of them by default) under ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m torchenstein.figures", description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="lesson modules, e.g. torchenstein.transformers.attention")
    parser.add_argument("--out", default="figures", help="folder to write into (default: figures)")
    args = parser.parse_args(argv)
    try:
        chosen = [find_lesson(m) for m in args.modules] if args.modules else lessons()
    except KeyError as err:
        print(f"error: {err.args[0]}", file=sys.stderr)
        return 2
    for lesson in chosen:
        folder = Path(args.out) / lesson.part_slug / lesson.name
        folder.mkdir(parents=True, exist_ok=True)
        for filename, svg in lesson_figures(lesson):
            (folder / filename).write_bytes(svg)
            print(folder / filename)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
