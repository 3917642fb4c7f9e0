"""The site build's caches: what is unchanged since the last build is not made again.

Rendering the lesson pages (mkdocstrings) and their source views is most of a build, and MkDocs
rebuilds the whole site on every edit of ``mkdocs serve``. A page's HTML depends only on its Markdown,
its lesson's source and the site's configuration and tools, so the hooks keep each rendered page, with
the cross-reference anchors it registered, under a hash of all of them (in memory and on disk) and hand
it back when nothing changed. A build with no cache renders every page itself.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
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
counts = {"reused": 0, "rendered": 0}
"""How many pages the current build took from the cache and how many it rendered (reset by the hooks)."""


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


def kept_on_disk(folder: Path, name: str, inputs_key: str, make: Callable[[], object]) -> object:
    """The JSON value ``make()`` returns, kept in ``folder/name.json`` until its inputs change.

    One file per name holds the value and the key of the inputs it was made from; a different key
    makes the value again and replaces the file (atomically, so a build that stops halfway leaves a
    whole file or the old one).

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
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
        if kept["key"] == inputs_key:
            return kept["value"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    value = make()
    _write_whole(path, {"key": inputs_key, "value": value})
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
        from material.plugins.search.plugin import SearchIndex
    except ImportError:  # pragma: no cover - another theme: nothing to remember
        return
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
            return copy.deepcopy(made)

        inputs = key(page.content or "", str(page.title), repr(page.meta.get("search")), repr(page.meta.get("tags")))
        self.entries.extend(kept_on_disk(folder, page.url or "index", inputs, index_afresh))

    add_entry_from_context.indexes_afresh = index_page
    SearchIndex.add_entry_from_context = add_entry_from_context
