"""The caches that make a rebuild of ``mkdocs serve`` take seconds: each gives back what it kept only
while everything the result depends on is unchanged."""

from __future__ import annotations

import ast
from types import SimpleNamespace

import pytest

from torchenstein._site import rendercache


class Template:
    """A stand-in for the theme's ``main.html``: counts its renders, shows what it was given."""

    name = "main.html"

    def __init__(self):
        self.renders = 0

    def render(self, context) -> str:
        self.renders += 1
        page = context["page"]
        return f"<title>{page.title}</title>{page.content} of {len(context['nav'].items)}"


def make_page(content="<p>RMSNorm</p>", title="RMSNorm", url="nn/rmsnorm/", previous=None):
    return SimpleNamespace(
        file=SimpleNamespace(src_uri=url + "index.md"),
        url=url,
        title=title,
        content=content,
        toc=[],
        meta={},
        previous_page=previous,
        next_page=None,
    )


def make_nav(*titles):
    return SimpleNamespace(items=[SimpleNamespace(title=t, url=f"{t}/", children=None) for t in titles])


@pytest.fixture
def theme():
    rendercache._OUTPUTS.clear()
    template = Template()
    yield template, rendercache.KeptTheme(template, site="mkdocs.yml and tool versions")
    rendercache._OUTPUTS.clear()


def test_an_unchanged_page_keeps_its_html_without_the_theme(theme):
    template, kept = theme
    nav = make_nav("Tensors", "nn")
    first = kept.render({"page": make_page(), "nav": nav})
    assert kept.render({"page": make_page(), "nav": make_nav("Tensors", "nn")}) == first
    assert template.renders == 1


@pytest.mark.parametrize(
    "change",
    [
        {"content": "<p>RMSNorm, edited</p>"},
        {"title": "Root mean square"},
        {"url": "nn/layernorm/"},
        {"previous": SimpleNamespace(url="nn/linear/", title="Linear")},
    ],
    ids=["content", "title", "address", "neighbour"],
)
def test_a_page_that_shows_something_else_goes_through_the_theme_again(theme, change):
    template, kept = theme
    kept.render({"page": make_page(), "nav": make_nav("Tensors", "nn")})
    again = kept.render({"page": make_page(**change), "nav": make_nav("Tensors", "nn")})
    assert template.renders == 2
    if "content" in change:
        assert "edited" in again


def test_a_new_lesson_in_the_navigation_renders_every_page_again(theme):
    template, kept = theme
    kept.render({"page": make_page(), "nav": make_nav("Tensors", "nn")})
    assert kept.render({"page": make_page(), "nav": make_nav("Tensors", "nn", "Training")}).endswith("of 3")
    assert template.renders == 2


def test_griffe_parses_a_file_again_only_when_its_source_changed(monkeypatch):
    """What mkdocstrings reads through griffe: one tree per file, the newest source's."""
    # Where this griffe keeps its visitor elsewhere, the cache is simply not installed: nothing to test.
    visitor = pytest.importorskip("griffe._internal.agents.visitor")

    monkeypatch.delattr(visitor, "compile", raising=False)
    monkeypatch.setattr(rendercache, "_TREES", {})
    rendercache.remember_parsed_modules()
    compile_once = visitor.compile
    try:
        first = compile_once("x = 1\n", "lesson.py", "exec", ast.PyCF_ONLY_AST)
        assert compile_once("x = 1\n", "lesson.py", "exec", ast.PyCF_ONLY_AST) is first
        edited = compile_once("x = 2\n", "lesson.py", "exec", ast.PyCF_ONLY_AST)
        assert edited is not first and edited.body[0].value.value == 2
        assert list(rendercache._TREES) == ["lesson.py"], "an old version of a file is forgotten"
        assert isinstance(compile_once("x = 1\n", "lesson.py", "exec"), type(compile("", "", "exec")))
    finally:
        del visitor.compile


def test_the_search_plugin_still_scrubs_its_attributes_where_a_page_has_them():
    from material.plugins.search.plugin import SearchPlugin

    rendercache._skip_needless_attribute_scrub(SearchPlugin)
    indexed = []
    plugin = SimpleNamespace(
        config=SimpleNamespace(enabled=True),
        search_index=SimpleNamespace(add_entry_from_context=lambda page: indexed.append(page.content)),
    )
    plain = SimpleNamespace(content='<p class="x">Tensors</p>')
    marked = SimpleNamespace(content='<h2 data-search-exclude="true">Hidden</h2>')
    for page in (plain, marked):
        SearchPlugin.on_page_context(plugin, {}, page=page, config=None, nav=None)
    assert indexed == ['<p class="x">Tensors</p>', '<h2 data-search-exclude="true">Hidden</h2>']
    assert marked.content == "<h2>Hidden</h2>"
    assert plain.content == '<p class="x">Tensors</p>'


def test_a_serve_has_griffe_parse_the_package_ahead_once(monkeypatch):
    """After a serve's first build the lessons are parsed in the background, so the first edit is quick."""
    # Where this griffe keeps its visitor elsewhere, the cache is simply not installed: nothing to test.
    visitor = pytest.importorskip("griffe._internal.agents.visitor")

    from torchenstein.course import module_path

    monkeypatch.delattr(visitor, "compile", raising=False)
    monkeypatch.setattr(rendercache, "_TREES", {})
    monkeypatch.setattr(rendercache, "_parse_ahead", None)
    rendercache.remember_parsed_modules()
    try:
        thread = rendercache.parse_ahead("torchenstein")
        thread.join(timeout=60)
        assert str(module_path("torchenstein.nn.rmsnorm")) in rendercache._TREES
        assert rendercache.parse_ahead("torchenstein") is thread, "a second build must not parse again"
    finally:
        del visitor.compile


def test_materials_page_context_still_only_indexes_then_scrubs():
    """A tripwire for upgrades: the skip above replays Material's method, which must still be just this."""
    import inspect

    from material.plugins.search.plugin import SearchPlugin

    rendercache._skip_needless_attribute_scrub(SearchPlugin)
    source = inspect.getsource(SearchPlugin.on_page_context.scrubs_always)
    statements = [line.strip() for line in source.splitlines()[1:] if line.strip() and not line.strip().startswith("#")]
    assert statements == [
        "if not self.config.enabled:",
        "return",
        "self.search_index.add_entry_from_context(page)",
        "page.content = re.sub(",
        'r"\\s?data-search-\\w+=\\"[^\\"]+\\"",',
        '"",',
        "page.content",
        ")",
    ], "Material's search plugin changed on_page_context: check rendercache._skip_needless_attribute_scrub"
