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
import ast
import functools
import hashlib
import importlib
import importlib.metadata
import io
import json
import multiprocessing
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from types import ModuleType

from torchenstein.course import Lesson, find_lesson, lessons, module_path, syntax_tree


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
        ValueError: if the figure has no axes: nothing was drawn.
    """
    import matplotlib
    from matplotlib.figure import Figure

    figure = plot()
    if not isinstance(figure, Figure):
        raise TypeError(f"{plot.__qualname__} must return a matplotlib Figure, got {type(figure).__name__}")
    if not figure.axes:
        raise ValueError(f"{plot.__qualname__} returned a Figure with no axes: it drew nothing")
    buffer = io.BytesIO()
    # A fixed hash salt and no date keep the SVG identical from one build to the next.
    with matplotlib.rc_context({"svg.hashsalt": "torchenstein"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def lesson_figures(lesson: Lesson) -> Iterator[tuple[str, bytes]]:
    """Draw every figure of one lesson: yields ``(file name, SVG)`` pairs such as ``plot_x.svg``."""
    module = importlib.import_module(lesson.module)
    for name, plot in plotting_functions(module).items():
        yield f"{name}.svg", render_svg(plot)


# Drawing figures is the slowest part of a site build, so the site keeps them on disk, under a key made
# of everything a figure depends on: the lesson's code, the code of every module of the package it
# imports (transitively; docstrings and comments are prose, and left out), this module's drawing format
# and the versions of matplotlib and torch. An edit of code anywhere in that chain gives a new key and a
# new drawing; anything else, an edit of a lesson's text included, reuses the old one. Missing
# figures are drawn in fresh processes, in parallel and while the site renders its pages.
FIGURE_FORMAT = 1
"""Bump when `render_svg` changes what it writes, so every cached figure is drawn again."""


@functools.lru_cache(maxsize=512)
def figure_names(source: str) -> list[str]:
    r"""The plotting functions a lesson's source defines, by name, in source order, read without importing it.

    Examples:
        >>> figure_names("def plot_a():\n    pass\ndef helper():\n    pass\ndef _plot_b():\n    pass\n")
        ['plot_a']
    """
    return [
        node.name
        for node in syntax_tree(source).body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("plot_")
    ]


_IMPORTS: dict[str, frozenset[str]] = {}


def package_imports(source: str) -> frozenset[str]:
    """The modules of the package that a source imports directly (remembered by the source's hash)."""
    digest = hashlib.sha256(source.encode()).hexdigest()
    if digest in _IMPORTS:
        return _IMPORTS[digest]
    found = set()
    for node in ast.walk(syntax_tree(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] == "torchenstein" and _is_module(n))
    _IMPORTS[digest] = frozenset(found)
    return _IMPORTS[digest]


def _is_module(name: str) -> bool:
    """Whether a dotted name is a module of the package (not a function or class inside one)."""
    folder = module_path("torchenstein").parent.parent / Path(*name.split("."))
    return folder.with_suffix(".py").is_file() or (folder / "__init__.py").is_file()


def code_digest(module: str, code_digests: dict[str, list] | None = None) -> str:
    """The hash of the code the figures of ``module`` are drawn by: its own and that of every package
    module it imports, transitively, and of this module (see the comment above).

    Args:
        module: the lesson module.
        code_digests: by the hash of each source, the hash of its code and the package modules it
            imports; reading those means parsing the source, so a caller that builds often keeps them
            (this fills it in).

    Examples:
        >>> len(code_digest("torchenstein.nn.rmsnorm"))
        64
    """
    code_digests = {} if code_digests is None else code_digests
    seen: set[str] = set()
    pending = [module, __name__]
    digest = hashlib.sha256()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        source = module_path(name).read_text(encoding="utf-8")
        source_digest = hashlib.sha256(source.encode()).hexdigest()
        if source_digest not in code_digests:
            code = hashlib.sha256(code_of(source).encode()).hexdigest()
            code_digests[source_digest] = [code, sorted(package_imports(source))]
        code, imports = code_digests[source_digest]
        digest.update(f"\0{name}\0{code}".encode())
        pending.extend(sorted(set(imports) - seen))
    return digest.hexdigest()


def provenance(module: str, code_digests: dict[str, list] | None = None) -> dict[str, str | int]:
    """What the figures of ``module`` depend on: the code that draws them, the drawing format and the
    versions of matplotlib and torch. Two drawings with the same provenance are the same, byte for byte."""
    return {
        "code": code_digest(module, code_digests),
        "format": FIGURE_FORMAT,
        "versions": _drawing_library_versions(),
    }


def figure_key(module: str, code_digests: dict[str, list] | None = None) -> str:
    """The figures' `provenance` as one hash: the name of their folder in the build's cache.

    Examples:
        >>> len(figure_key("torchenstein.nn.rmsnorm"))
        64
    """
    return hashlib.sha256(json.dumps(provenance(module, code_digests), sort_keys=True).encode()).hexdigest()


@functools.cache
def _drawing_library_versions() -> str:
    """The installed matplotlib and torch, read without importing either (torch alone takes seconds)."""
    return " ".join(importlib.metadata.version(d) for d in ("matplotlib", "torch"))


@functools.lru_cache(maxsize=512)
def code_of(source: str) -> str:
    r"""What a module's figures can depend on: its code, without docstrings, comments or line numbers.

    Writing a course is mostly writing prose, in the docstrings: an edit there should redraw nothing.

    Examples:
        >>> code_of("'A lesson.'\nx = 1  # a comment\n") == code_of("'A better lesson.'\n\nx = 1\n")
        True
        >>> code_of("x = 1\n") == code_of("x = 2\n")
        False
    """
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body[0] = ast.Pass()  # a docstring is no code; a pass keeps the body a body
    return ast.dump(tree)


def _draw_in_this_process(module: str) -> list[tuple[str, bytes]]:
    """Draw one lesson's figures here, importing the lesson if it is not imported yet."""
    return list(lesson_figures(find_lesson(module)))


def _draw_as_the_site_does() -> None:
    """Draw with one thread and no progress bars, as every drawing process does: a figure of a training
    run then comes out the same, to the last bit, whoever draws it."""
    import torch

    torch.set_num_threads(1)
    os.environ["TQDM_DISABLE"] = "1"


def _start_drawing_process() -> None:
    """Set up one drawing process, once, before its first task.

    Each process draws with one thread: the processes already share the cores between them. A figure
    that trains something draws no progress bar into the build's log. And it draws at a lower priority
    than the build that waits for it: the build renders pages on one core while the drawing processes
    share both, so at equal priority the build, which has the longer road, gets a share of its core and
    then finishes alone while the other core idles. Below the build's priority the drawings take what it
    leaves, and both end together.
    """
    _draw_as_the_site_does()
    if hasattr(os, "nice"):
        try:
            os.nice(10)
        except OSError:  # pragma: no cover - not allowed here: draw at the build's priority
            pass


# Libraries every drawing process needs and no edit of the course changes.
_PRELOAD = ["torch", "matplotlib.figure", "matplotlib.backends.backend_svg"]


@functools.cache
def _drawing_context() -> multiprocessing.context.BaseContext:
    """How drawing processes start: forked from a server that imported torch and matplotlib once.

    A process started afresh spends seconds importing torch before it draws anything, on every build
    and on every rebuild of ``mkdocs serve``. The fork server pays that once per build process; each
    drawing process forked from it still imports the lessons themselves anew. Where there is no fork
    server (Windows), processes start afresh.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():  # pragma: no cover - Windows
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


class FigureShelf:
    """A folder of drawn figures that records what each lesson's were drawn from.

    The course ships one, ``figures/`` at the top of the repository, written by ``torchenstein figures``:
    a fresh clone then builds its site without drawing a figure, as long as its code and its versions of
    matplotlib and torch are those the record names. Any other figure is drawn as usual.

    Layout: ``<part>/<lesson>/plot_<what>.svg``, and ``drawn-from.json``, which maps each lesson module
    to the `provenance` of its figures.

    Examples:
        >>> import tempfile
        >>> from torchenstein.course import find_lesson
        >>> shelf, lesson = FigureShelf(tempfile.mkdtemp()), find_lesson("torchenstein.nn.rmsnorm")
        >>> shelf.holds(lesson)
        False
        >>> shelf.put(lesson, list(lesson_figures(lesson)))
        >>> shelf.holds(lesson), [path.name for path in shelf.files(lesson)]
        (True, ['plot_rmsnorm_vs_layernorm.svg'])
    """

    RECORD = "drawn-from.json"

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def record(self) -> dict[str, dict]:
        """The provenance of each lesson's figures on the shelf (empty where there is no record)."""
        try:
            return json.loads((self.folder / self.RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def files(self, lesson: Lesson) -> list[Path]:
        """Where the shelf keeps the figures the lesson's code draws, in the order it draws them."""
        names = figure_names(module_path(lesson.module).read_text(encoding="utf-8"))
        return [self.folder / lesson.part_slug / lesson.name / f"{name}.svg" for name in names]

    def holds(self, lesson: Lesson, code_digests: dict[str, list] | None = None) -> bool:
        """Whether the shelf has every figure of the lesson, drawn from what they depend on now."""
        entry = self.record().get(lesson.module)
        return entry == provenance(lesson.module, code_digests) and all(path.is_file() for path in self.files(lesson))

    def put(self, lesson: Lesson, drawn: list[tuple[str, bytes]], code_digests: dict[str, list] | None = None) -> None:
        """Shelve a lesson's freshly drawn figures, in place of any it had, and record their provenance."""
        folder = self.folder / lesson.part_slug / lesson.name
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.svg"):
            old.unlink()
        for filename, svg in drawn:
            (folder / filename).write_bytes(svg)
        record = self.record()
        record[lesson.module] = provenance(lesson.module, code_digests)
        self.save(record)

    def save(self, record: dict[str, dict]) -> None:
        """Write the record whole or not at all."""
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / f"{self.RECORD}.{os.getpid()}.tmp"
        partial.write_text(json.dumps(dict(sorted(record.items())), indent=1) + "\n", encoding="utf-8")
        partial.replace(self.folder / self.RECORD)


class FigureBoard:
    """The figures of many lessons: read from the disk cache, or drawn in parallel and then cached.

    Args:
        cache_dir: the folder of the cache (the site uses ``.cache/torchenstein/figures``).
        workers: how many processes draw the missing figures (default: one per core); 0 draws them in
            this process instead, when it is asked for them (fine once, but a long-lived process such as
            ``mkdocs serve`` would keep drawing the lessons it imported first).
        shelf: a `FigureShelf` to take figures from when the cache lacks them (the site uses the
            course's ``figures/``); only those drawn from the code and versions of now are taken.

    Examples:
        >>> import tempfile
        >>> from torchenstein.course import find_lesson
        >>> board = FigureBoard(tempfile.mkdtemp(), workers=0)
        >>> board.start([find_lesson("torchenstein.nn.rmsnorm")])
        >>> [name for name, _ in board.figures(find_lesson("torchenstein.nn.rmsnorm"))]
        ['plot_rmsnorm_vs_layernorm.svg']
        >>> board.drawn, board.reused
        (1, 0)
    """

    def __init__(self, cache_dir: str | Path, workers: int | None = None, shelf: str | Path | None = None):
        self.cache_dir = Path(cache_dir)
        self.shelf = FigureShelf(shelf) if shelf is not None else None
        self._shelved: set[str] = set()
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self.drawn = 0
        self.reused = 0
        self._pending: dict[str, Future] = {}
        self._keys: dict[str, str] = {}
        self._code_digests: dict[str, list] = {}
        self._pool: ProcessPoolExecutor | None = None
        self._starters: list[threading.Thread] = []

    def _folder(self, module: str, key: str) -> Path:
        return self.cache_dir / module / key

    def start(self, chosen: Sequence[Lesson]) -> None:
        """Begin drawing the figures of ``chosen`` that the cache does not hold; returns at once."""
        if self.workers > 0 and not self.cache_dir.is_dir() and not (self.shelf and self.shelf.record()):
            # No cache at all and no shelf: every figure will be drawn. The drawing processes start now, importing
            # torch, while this thread works out what each figure depends on.
            self._starters.append(threading.Thread(target=self._drawing_pool().submit, args=(os.getpid,), daemon=True))
            self._starters[-1].start()
        # What the sources seen before hold, so an unchanged module is not parsed again.
        digests_file = self.cache_dir / "code-digests.json"
        try:
            self._code_digests = json.loads(digests_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self._code_digests = {}
        before = dict(self._code_digests)
        missing = []
        for lesson in chosen:
            names = figure_names(module_path(lesson.module).read_text(encoding="utf-8"))
            key = self._keys[lesson.module] = figure_key(lesson.module, self._code_digests)
            folder = self._folder(lesson.module, key)
            if names and not all((folder / f"{name}.svg").is_file() for name in names):
                if self.shelf is not None and self.shelf.holds(lesson, self._code_digests):
                    self._shelved.add(lesson.module)
                else:
                    missing.append(lesson.module)
        if self.workers == 0:
            self._pending.update((module, self._submit(module)) for module in missing)
        elif missing:
            # Starting the drawing processes waits for torch to be imported once: the build goes on
            # rendering pages meanwhile, and `figures` waits for this thread before it looks.
            def submit_all() -> None:
                for module in missing:
                    self._pending[module] = self._submit(module)

            self._starters.append(threading.Thread(target=submit_all, name="figure-starter", daemon=True))
            self._starters[-1].start()
        if self._code_digests != before:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            partial = digests_file.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(json.dumps(self._code_digests), encoding="utf-8")
            partial.replace(digests_file)  # whole or not at all, even with two builds at once

    def _submit(self, module: str) -> Future:
        if self.workers == 0:
            future: Future = Future()
            future.set_result(_draw_in_this_process(module))
            return future
        return self._drawing_pool().submit(_draw_in_this_process, module)

    def _drawing_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # Fresh processes import the lessons as they are on disk now, never a stale copy.
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=_drawing_context(), initializer=_start_drawing_process
            )
        return self._pool

    def figures(self, lesson: Lesson) -> list[tuple[str, bytes]]:
        """The ``(file name, SVG)`` pairs of one lesson, waiting for its drawing if it is under way.

        The cache key is the one `start` computed, so one build shows one version of every figure even
        if a lesson is edited while it runs.
        """
        key = self._keys.get(lesson.module) or figure_key(lesson.module, self._code_digests)
        folder = self._folder(lesson.module, key)
        self._wait_for_starter()
        future = self._pending.pop(lesson.module, None)
        if future is None:
            names = figure_names(module_path(lesson.module).read_text(encoding="utf-8"))
            if all((folder / f"{name}.svg").is_file() for name in names):
                self.reused += len(names)
                return [(f"{name}.svg", (folder / f"{name}.svg").read_bytes()) for name in names]
            if lesson.module in self._shelved:  # `start` found it on the shelf, drawn from this code
                self.reused += len(names)
                return [(path.name, path.read_bytes()) for path in self.shelf.files(lesson)]
            future = self._submit(lesson.module)
        drawn = future.result()
        folder.mkdir(parents=True, exist_ok=True)
        for filename, svg in drawn:
            (folder / filename).write_bytes(svg)
        self.drawn += len(drawn)
        self._forget_older(lesson.module, key)
        return drawn

    def _forget_older(self, module: str, key: str) -> None:
        """Delete the drawings of a lesson's earlier versions, so the cache holds one per lesson."""
        for folder in (self.cache_dir / module).iterdir():
            if folder.name != key:
                shutil.rmtree(folder, ignore_errors=True)

    def _wait_for_starter(self) -> None:
        while self._starters:
            self._starters.pop(0).join()

    def close(self) -> None:
        """Stop the drawing processes."""
        self._wait_for_starter()
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def main(argv: Sequence[str] | None = None) -> int:
    """Draw the figures of the given lessons (all of them by default) onto the shelf ``--out``.

    A lesson whose figures the shelf already holds, drawn from its code as it is now, is not drawn again.
    """
    parser = argparse.ArgumentParser(prog="python -m torchenstein.figures", description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="lesson modules, e.g. torchenstein.transformers.attention")
    parser.add_argument("--out", default="figures", help="the shelf to draw onto (default: figures)")
    args = parser.parse_args(argv)
    try:
        chosen = [find_lesson(m) for m in args.modules] if args.modules else lessons()
    except KeyError as err:
        print(f"error: {err.args[0]}", file=sys.stderr)
        return 2
    shelf, code_digests, current = FigureShelf(args.out), {}, 0
    _draw_as_the_site_does()
    for lesson in chosen:
        if not shelf.files(lesson):
            continue
        if shelf.holds(lesson, code_digests):
            current += 1
            continue
        shelf.put(lesson, list(lesson_figures(lesson)), code_digests)
        for path in shelf.files(lesson):
            print(path)
    if not args.modules:
        # A lesson that no longer draws anything (or no longer exists) leaves the record.
        drawing = {lesson.module for lesson in chosen if shelf.files(lesson)}
        record = shelf.record()
        if set(record) - drawing:
            shelf.save({module: entry for module, entry in record.items() if module in drawing})
    if current:
        lessons_word = "lesson already had its figures" if current == 1 else "lessons already had their figures"
        print(f"{current} {lessons_word} on {shelf.folder}, drawn from their code as it is")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
