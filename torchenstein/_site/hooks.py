"""MkDocs hooks that turn the course order into the site.

On every build they set the navigation from `torchenstein.course`, add a page, an annotated source
view, a notebook and the figures for every lesson, add the course map, and give every documented object on a lesson
page a link to its lines in the source view.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import re
from pathlib import Path

import jinja2
from mkdocs import plugins
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

from torchenstein._site import rendercache, signatures
from torchenstein._site.labpages import lab_banner, tidy_lab_html
from torchenstein._site.notebooks import notebook_json
from torchenstein._site.pages import course_map, course_path, lesson_page, navigation
from torchenstein._site.sourceview import (
    annotated_source,
    documented_members,
    object_spans,
    restore_code_blocks,
    stash_code_blocks,
)
from torchenstein.course import Lesson, labs, lesson_text, lessons, module_path
from torchenstein.figures import FigureBoard, figure_names

_PLAIN_HEADING = re.compile(r'<h[1-6] id="([^"]*)">(.*?)</h[1-6]>', re.S)
_HEADING = re.compile(r'(<h(?P<level>[1-6]) id="(?P<id>torchenstein\.[\w.]+)" class="doc doc-heading">.*?</h(?P=level)>)', re.S)


log = logging.getLogger("mkdocs.plugins.torchenstein")

# The annotated source view depends on the code that makes it as much as on the lesson.
SOURCEVIEW_CODE = module_path("torchenstein._site.sourceview").read_text(encoding="utf-8")

FIGURE_CACHE = ".cache/torchenstein/figures"
"""Where the drawn figures are kept between builds, relative to the folder of ``mkdocs.yml``."""
FIGURE_SHELF = "figures"
"""The figures the course ships, drawn by ``torchenstein figures`` (a `FigureShelf`): a fresh clone takes
each one that was drawn from its code as it is, instead of drawing it."""

SEARCH_CACHE = ".cache/torchenstein/search"
"""Where each page's search entries are kept, under the hash of its HTML."""

PAGE_CACHE = ".cache/torchenstein/pages"
"""Where each lesson page and source view is kept, rendered, under the hash of what it is made from."""

SOURCE_CACHE = ".cache/torchenstein/source"
"""Where each lesson's annotated source view is kept, under the hash of what it is made from."""

TEMPLATE_CACHE = ".cache/torchenstein/templates"
"""Where the theme's compiled templates are kept (Jinja checks each against its template's source)."""


_board: FigureBoard | None = None
_templates: jinja2.BytecodeCache | None = None
_figure_files: dict[str, list[File]] = {}
_code_blocks: dict[str, tuple[str, ...]] = {}


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Build the navigation from the course order, and start drawing the figures the cache lacks."""
    global _board
    config.nav = navigation()
    root = Path(config.config_file_path).parent
    rendercache.remember_search_entries(root / SEARCH_CACHE)
    signatures.install()
    rendercache.remember_parsed_modules()
    _board = FigureBoard(root / FIGURE_CACHE, shelf=root / FIGURE_SHELF)
    _board.start(lessons())
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add each lesson's page, source view, notebook and figures, and the course map."""
    for lesson in lessons():
        path = module_path(lesson.module)
        source = path.read_text(encoding="utf-8")
        files.append(File.generated(config, lesson.page, content=lesson_page(lesson, documented_members(source))))
        display = lesson.module.replace(".", "/") + ".py"
        # Highlighting a whole module is slow: the view is kept on disk until the lesson or this code changes.
        inputs = rendercache.key(source, lesson.title, display, SOURCEVIEW_CODE)
        view = rendercache.kept_on_disk(
            Path(config.config_file_path).parent / SOURCE_CACHE,
            lesson.module,
            inputs,
            functools.partial(annotated_source, lesson.module, source, lesson_title=lesson.title, display_path=display),
        )
        page, _code_blocks[lesson.source_page] = stash_code_blocks(view)
        files.append(File.generated(config, lesson.source_page, content=page))
        files.append(File.generated(config, lesson.notebook, content=notebook_json(lesson_text(source), lesson.module)))
        # The figures are still being drawn: their files are written at the end of the build.
        _figure_files[lesson.module] = [
            FigureFile.generated(config, f"{lesson.part_slug}/{lesson.name}/{name}.svg", content=b"")
            for name in figure_names(source)
        ]
        for file in _figure_files[lesson.module]:
            files.append(file)
    files.append(File.generated(config, "course-map.md", content=course_map()))
    # mkdocstrings' own templates are compiled once and kept, as the theme's are (in on_env).
    global _templates
    folder = Path(config.config_file_path).parent / TEMPLATE_CACHE
    folder.mkdir(parents=True, exist_ok=True)
    _templates = jinja2.FileSystemBytecodeCache(str(folder))
    config.plugins["mkdocstrings"].handlers.get_handler("python").env.bytecode_cache = _templates
    return files


def on_env(env, config: MkDocsConfig, files: Files):
    """Keep the theme's compiled templates on disk, and a page's HTML while it shows what it showed.

    The templates are checked by Jinja against their sources; a page that shows what it showed in the
    last build of this process keeps its HTML (see `rendercache.KeptTheme`).
    """
    env.bytecode_cache = _templates
    rendercache.keep_theme_outputs(env, _site_tools(config.config_file_path))
    log.info(f"lesson pages and source views: {rendercache.counts['rendered']} rendered, "
             f"{rendercache.counts['reused']} unchanged since the last build")
    return env


class FigureFile(File):
    """A lesson's figure: listed with the site's files from the start, so pages may link to it, and
    written only once drawn, at the end of the build (`on_post_build`), so no page waits for it."""

    drawn = False

    def copy_file(self, dirty: bool = False) -> None:
        if self.drawn:
            super().copy_file(dirty)


def on_startup(command: str, dirty: bool) -> None:
    """Note whether this process serves the site, rebuilding it on every edit."""
    rendercache.serving = command == "serve"


@plugins.event_priority(-100)  # last: the other plugins' work (the search index) overlaps the drawing
def on_post_build(config: MkDocsConfig) -> None:
    """Write every figure, waiting for those still being drawn; say what the build drew and rendered.

    The pages were written meanwhile: only the figures wait for their drawing. After a serve's first
    build, griffe parses the package in the background (see `rendercache.parse_ahead`).
    """
    log.info(f"pages through the theme: {rendercache.counts['themed']}, the others unchanged since the last build")
    rendercache.counts.update(reused=0, rendered=0, themed=0)
    assert _board is not None
    for lesson in lessons():
        drawn = dict(_board.figures(lesson))
        for file in _figure_files.pop(lesson.module, []):
            file.content_bytes = drawn[Path(file.src_uri).name]
            file.drawn = True
            file.copy_file()
    _board.close()
    log.info(f"figures: {_board.drawn} drawn, {_board.reused} reused from {FIGURE_CACHE} or {FIGURE_SHELF}/")
    if rendercache.serving:
        rendercache.parse_ahead("torchenstein")


def on_build_error(error: Exception) -> None:
    """Stop any drawing still under way when the build fails."""
    if _board is not None:
        _board.close()


COURSE_PATH_MARKER = "<!-- course-path -->"


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Write the path through the course where a page asks for it; reuse lesson pages that did not change."""
    lesson = next((le for le in lessons() if page.file.src_uri in (le.page, le.source_page)), None)
    if lesson is not None:
        source = module_path(lesson.module).read_text(encoding="utf-8")
        inputs = rendercache.key(markdown, source, _site_tools(config.config_file_path))
        root = Path(config.config_file_path).parent
        rendercache.reuse_or_record(page, inputs, config.plugins["autorefs"], root / PAGE_CACHE)
    return markdown.replace(COURSE_PATH_MARKER, course_path())


@functools.lru_cache(maxsize=4)
def _site_tools(config_file: str) -> str:
    """What else a rendered page depends on: the site's configuration and the versions of its tools."""
    tools = ("mkdocs", "mkdocs-material", "mkdocstrings", "mkdocstrings-python", "griffe", "mkdocs-autorefs",
             "markdown", "pymdown-extensions", "pygments", "mkdocs-jupyter")
    versions = []
    for tool in tools:
        try:
            versions.append(f"{tool}=={importlib.metadata.version(tool)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{tool} missing")
    return Path(config_file).read_text(encoding="utf-8") + "\n".join(versions)


def _lesson_of(page: Page) -> Lesson | None:
    return next((lesson for lesson in lessons() if lesson.page == page.file.src_uri), None)


def _retitle(items: list, html: str) -> None:
    """Give the table of contents the lesson's own heading markup.

    mkdocstrings hands MkDocs the titles of headings inside docstrings with their inline code and math
    replaced by internal placeholders; the rendered heading still has the real markup, so take it from
    there (links unwrapped, since a contents entry is itself a link).
    """
    headings = {found[1]: found[2] for found in _PLAIN_HEADING.finditer(html)}

    def retitle(items: list) -> None:
        for item in items:
            if item.id in headings:
                title = re.sub(r'<a class="headerlink".*?</a>', "", headings[item.id], flags=re.S)
                item.title = re.sub(r"</?a\b[^>]*>", "", title).strip()
            retitle(item.children)

    retitle(items)


def on_page_content(html: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Give every documented object on a lesson page a link to its lines in the annotated source."""
    if page.file.src_uri in _code_blocks:
        return restore_code_blocks(html, _code_blocks[page.file.src_uri])
    lab = next((lab for lab in labs() if lab.page == page.file.src_uri), None)
    if lab is not None:
        html = tidy_lab_html(html)
        # The note goes under the lab's title, as the lesson pages' does under their text.
        return html.replace("</h1>", "</h1>" + lab_banner(lab), 1) if "</h1>" in html else lab_banner(lab) + html
    lesson = _lesson_of(page)
    if lesson is None:
        return html
    _retitle(page.toc.items, html)
    spans = object_spans(module_path(lesson.module).read_text(encoding="utf-8"))
    prefix = lesson.module + "."

    def link(match: re.Match) -> str:
        qualname = match["id"].removeprefix(prefix)
        if not match["id"].startswith(prefix) or qualname not in spans:
            return match[0]
        start, end = spans[qualname]
        return (
            f'{match[0]}\n<p class="tl-source-link"><a href="source/#L{start}-L{end}" '
            f'title="Read {qualname} in the annotated source">source, lines {start}–{end}</a></p>'
        )

    return _HEADING.sub(link, html)
