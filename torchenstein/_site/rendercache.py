"""The site build's caches: what is unchanged since the last build is not made again.

Rendering the lesson pages (mkdocstrings) and their source views is most of a build, and MkDocs
rebuilds the whole site on every edit of ``mkdocs serve``. A page's HTML depends only on its Markdown,
its lesson's source and the site's configuration and tools, so the hooks keep each rendered page, with
the cross-reference anchors it registered, under a hash of all of them (in memory and on disk) and hand
it back when nothing changed. A build with no cache renders every page itself.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Rendered:
    """What rendering a page produced, and the anchors it registered with autorefs on the way."""

    content: str
    toc: list[dict]
    title: str | None
    anchor_ids: list[str]
    anchors: list[tuple[list, dict]] = field(default_factory=list)

    @staticmethod
    def toc_tokens(items) -> list[dict]:
        """A page's table of contents as the plain tokens MkDocs builds one from."""
        return [
            {"level": i.level, "id": i.id, "name": i.title, "children": Rendered.toc_tokens(i.children)}
            for i in items
        ]


_PAGES: dict[str, tuple[str, Rendered]] = {}
_OUTPUTS: dict[str, tuple[str, str]] = {}
counts = {"reused": 0, "rendered": 0, "themed": 0}
"""How many pages the current build took from the cache, how many it rendered, and how many it passed
through the theme's templates (reset by the hooks)."""


def key(*parts: str) -> str:
    """The hash of a page's inputs.

    Examples:
        >>> key("a", "b") == key("a", "b") != key("ab", "")
        True
    """
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def reuse_or_record(page, page_key: str, autorefs, folder: Path | None = None) -> None:
    """Make ``page.render`` give back the kept page for ``page_key``, or render it and keep it.

    Args:
        page: the MkDocs page about to be rendered.
        page_key: the hash of everything the page's HTML depends on.
        autorefs: the autorefs plugin, whose anchors a kept page registers again.
        folder: where pages are kept on disk between builds (``None``: in memory only).
    """
    from mkdocs.structure.toc import get_toc

    uri = page.file.src_uri
    render = page.render
    kept = _PAGES.get(uri)
    if (kept is None or kept[0] != page_key) and folder is not None:
        try:
            on_disk = json.loads((folder / _file_name(uri)).read_text(encoding="utf-8"))
            if on_disk["key"] == page_key:
                kept = (page_key, Rendered(**on_disk["page"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass

    if kept is not None and kept[0] == page_key:
        rendered = kept[1]
        _PAGES[uri] = kept

        def replay(config, files):
            counts["reused"] += 1
            page.content, page.toc, page._title_from_render = rendered.content, get_toc(rendered.toc), rendered.title
            page.present_anchor_ids, page.links_to_anchors = set(rendered.anchor_ids), None
            for args, kwargs in rendered.anchors:
                autorefs.register_anchor(page, *args, **kwargs)

        page.render = replay
        return

    def record(config, files):
        counts["rendered"] += 1
        anchors: list[tuple[list, dict]] = []
        register = autorefs.register_anchor

        def remember(anchor_page, *args, **kwargs):
            if anchor_page is page:
                anchors.append((list(args), kwargs))
            return register(anchor_page, *args, **kwargs)

        autorefs.register_anchor = remember
        try:
            render(config, files)
        finally:
            del autorefs.register_anchor  # back to the class's own method
        rendered = Rendered(
            page.content, Rendered.toc_tokens(page.toc), page._title_from_render, sorted(page.present_anchor_ids or ()), anchors
        )
        _PAGES[uri] = (page_key, rendered)
        if folder is not None:
            _write_whole(folder / _file_name(uri), {"key": page_key, "page": rendered.__dict__})

    page.render = record


def _write_whole(path: Path, data: dict) -> None:
    """Write JSON atomically: a build that stops halfway leaves the whole new file or the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(data), encoding="utf-8")
    partial.replace(path)


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".json"


_KEPT: dict[Path, tuple[str, object]] = {}


def kept_on_disk(folder: Path, name: str, inputs_key: str, make: Callable[[], object]) -> object:
    """The JSON value ``make()`` returns, kept in ``folder/name.json`` until its inputs change.

    One file per name holds the value and the key of the inputs it was made from; a different key
    makes the value again and replaces the file (atomically, so a build that stops halfway leaves a
    whole file or the old one). The process keeps what it read, so the next build reads nothing: the
    value is shared between builds, and a caller that changes it must copy it first.

    Examples:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> kept_on_disk(folder, "page", key("v1"), lambda: "made")
        'made'
        >>> kept_on_disk(folder, "page", key("v1"), lambda: "made again")
        'made'
        >>> kept_on_disk(folder, "page", key("v2"), lambda: "made again")
        'made again'
    """
    path = folder / _file_name(name)
    if path in _KEPT and _KEPT[path][0] == inputs_key:  # read in this process already
        return _KEPT[path][1]
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
        if kept["key"] == inputs_key:
            _KEPT[path] = (inputs_key, kept["value"])
            return kept["value"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    value = make()
    _write_whole(path, {"key": inputs_key, "value": value})
    _KEPT[path] = (inputs_key, value)
    return value


_PRE = re.compile(r"<pre\b.*?</pre>", re.S)
_SPAN = re.compile(r"</?span\b[^>]*>")


def without_code_spans(html: str) -> str:
    """A page's HTML without the highlighting ``<span>`` tags inside its ``<pre>`` blocks.

    Material's search parser keeps every character inside ``<pre>`` and ignores ``<span>`` tags, so it
    indexes exactly the same text, but the highlighted code of a lesson is most of the tags it would
    otherwise read one by one: indexing a page this way takes a third of the time.

    Examples:
        >>> without_code_spans('<p><span>a</span></p><pre><span class="k">def</span> <span>f</span></pre>')
        '<p><span>a</span></p><pre>def f</pre>'
    """
    return _PRE.sub(lambda match: _SPAN.sub("", match.group(0)), html)


def remember_search_entries(folder: Path) -> None:
    """Index a page for search again only when its HTML, title or search settings changed.

    Material's search plugin parses every page's HTML on every build, a good share of a rebuild. This
    wraps its indexer, once per process, so a page whose HTML is unchanged gets the entries it had,
    from ``folder`` on disk.
    """
    try:
        from material.plugins.search.plugin import SearchIndex, SearchPlugin
    except ImportError:  # pragma: no cover - another theme: nothing to remember
        return
    _skip_needless_attribute_scrub(SearchPlugin)
    index_page = getattr(SearchIndex.add_entry_from_context, "indexes_afresh", SearchIndex.add_entry_from_context)

    def add_entry_from_context(self, page) -> None:
        def index_afresh() -> list[dict]:
            before = len(self.entries)
            content = page.content
            page.content = without_code_spans(content)
            try:
                index_page(self, page)
            finally:
                page.content = content
            made = self.entries[before:]
            del self.entries[before:]  # they go back in below, once, like the kept ones
            return made

        inputs = key(page.content or "", str(page.title), repr(page.meta.get("search")), repr(page.meta.get("tags")))
        # The kept entries are shared with the next build: the index gets copies (each a flat dict).
        self.entries.extend(dict(entry) for entry in kept_on_disk(folder, page.url or "index", inputs, index_afresh))

    add_entry_from_context.indexes_afresh = index_page
    SearchIndex.add_entry_from_context = add_entry_from_context


class KeptTheme:
    """A theme template that hands back a page's last HTML when nothing the page shows has changed.

    On every rebuild of ``mkdocs serve`` MkDocs passes every page through the theme's templates again,
    the navigation of the whole course included: the largest share of a rebuild once the pages
    themselves are kept. A page's HTML depends on its content, title, table of contents and metadata,
    its place in the navigation, the navigation itself, and the site's configuration and tools; this
    keeps it (in memory: one process, one ``mkdocs serve``) under a hash of all of them.

    Args:
        template: the theme template (``main.html``).
        site: the site's configuration and the versions of its tools.
    """

    def __init__(self, template, site: str):
        self.template = template
        self.site = site
        self._nav: tuple[object, str] | None = None

    def __getattr__(self, name: str):
        return getattr(self.template, name)

    def render(self, context) -> str:
        page = context.get("page")
        if page is None:
            counts["themed"] += 1
            return self.template.render(context)
        inputs = key(
            self.site,
            self.template.name or "",
            self._nav_signature(context["nav"]),
            page.url,
            page.title or "",
            page.content or "",
            json.dumps(Rendered.toc_tokens(page.toc)),
            repr(sorted(page.meta.items())),
            *(f"{other.url} {other.title}" if other else "" for other in (page.previous_page, page.next_page)),
        )
        kept = _OUTPUTS.get(page.file.src_uri)
        if kept is not None and kept[0] == inputs:
            return kept[1]
        counts["themed"] += 1
        html = self.template.render(context)
        _OUTPUTS[page.file.src_uri] = (inputs, html)
        return html

    def _nav_signature(self, nav) -> str:
        """Every title and address of the navigation, once per build."""
        if self._nav is None or self._nav[0] is not nav:

            def walk(items) -> list:
                return [(type(i).__name__, str(i.title), getattr(i, "url", None), walk(i.children or [])) for i in items]

            self._nav = (nav, key(repr(walk(nav.items))))
        return self._nav[1]


def keep_theme_outputs(env, site: str) -> None:
    """Make the theme environment ``env`` hand out `KeptTheme` templates."""
    get_template = env.get_template
    kept: dict[str, KeptTheme] = {}

    def get_kept_template(name, *args, **kwargs):
        template = get_template(name, *args, **kwargs)
        if name not in kept or kept[name].template is not template:
            kept[name] = KeptTheme(template, site)
        return kept[name]

    env.get_template = get_kept_template


def _skip_needless_attribute_scrub(plugin_class) -> None:
    """Spare Material's search plugin a regular-expression pass over pages it would not change.

    After indexing a page, the plugin removes any ``data-search-*`` attribute from its HTML with a
    pattern that starts with an optional space: scanning a large source view for it takes longer than
    indexing it. A page without the text ``data-search-`` has nothing to remove, and a substring test
    says so at once; every other page goes through the plugin's own method.
    """
    on_page_context = getattr(plugin_class.on_page_context, "scrubs_always", plugin_class.on_page_context)

    def index_then_scrub_if_needed(self, context, *, page, config, nav):
        if self.config.enabled and "data-search-" not in (page.content or ""):
            self.search_index.add_entry_from_context(page)
            return None
        return on_page_context(self, context, page=page, config=config, nav=nav)

    index_then_scrub_if_needed.scrubs_always = on_page_context
    plugin_class.on_page_context = index_then_scrub_if_needed


_TREES: dict[str, tuple[str, object]] = {}


def remember_parsed_modules() -> None:
    """Let griffe, which reads the lessons for mkdocstrings, parse each unchanged module only once.

    On every rebuild of ``mkdocs serve`` griffe parses the whole package again to render the one
    lesson page that changed, most of the time that page takes. Its visitor looks up ``compile`` in
    its own module; this gives it one that keeps the syntax tree of each file's newest source. A
    griffe whose visitor is organised otherwise simply parses as before.
    """
    try:
        from griffe._internal.agents import visitor
    except ImportError:  # pragma: no cover - another griffe: it parses as it always did
        return
    if getattr(visitor, "compile", None) is not None:
        return

    def compile_once(source, filename, mode, flags=0, *args, **kwargs):
        import ast

        if not flags & ast.PyCF_ONLY_AST or not isinstance(source, str):
            return compile(source, filename, mode, flags, *args, **kwargs)
        kept = _TREES.get(str(filename))
        if kept is None or kept[0] != source:  # one tree a file: the newest source's
            kept = _TREES[str(filename)] = (source, compile(source, filename, mode, flags, *args, **kwargs))
        return kept[1]

    visitor.compile = compile_once


_parse_ahead: threading.Thread | None = None
serving = False
"""Whether this process is ``mkdocs serve`` (set by the hooks when it starts): it rebuilds on every edit."""


def parse_ahead(package: str) -> threading.Thread:
    """Let griffe parse ``package`` in a background thread, so the first edit while serving is quick too.

    A serve starts from the kept pages, so griffe parses nothing in its first build, and the first edit
    would pay for parsing every module. Parsing them while the server waits for that edit fills the trees
    `remember_parsed_modules` keeps. A failure here only means the first edit parses for itself.
    """

    global _parse_ahead
    if _parse_ahead is not None:  # once a process: after that the trees are kept as the files change
        return _parse_ahead

    def parse() -> None:
        try:
            import griffe

            griffe.load(package, allow_inspection=False)
        except Exception:  # noqa: BLE001 - a head start, never a reason for the server to stop
            pass

    _parse_ahead = threading.Thread(target=parse, name="parse-ahead", daemon=True)
    _parse_ahead.start()
    return _parse_ahead
