"""The annotated source view cuts a module into prose and code without losing a line."""

from __future__ import annotations

import textwrap

from torchenstein._site.sourceview import annotated_source, documented_members, object_spans, split_sections

MODULE = textwrap.dedent(
    '''\
    """The module docstring.

    Two lines of it.
    """

    import torch  # noqa: F401

    # Why the constant exists.
    # It has *two* lines of prose.
    LIMIT = 3
    """A documented constant."""


    @staticmethod
    def first(x):
        """First."""
        # Inside a function, a comment still becomes prose.
        return x


    def second():
        """Second."""
        return "# not a comment"


    class Third:
        """Third."""

        def method(self):
            """A method."""
            return 1
    '''
)


def test_spans_start_at_the_first_decorator_and_include_methods():
    spans = object_spans(MODULE)
    assert spans["first"] == (14, 18)
    assert spans["second"] == (21, 23)
    assert spans["Third"] == (26, 31)
    assert spans["Third.method"] == (29, 31)


def test_documented_members_are_public_and_in_source_order():
    assert documented_members(MODULE) == ["LIMIT", "first", "second", "Third"]


def test_sections_keep_every_code_line_once_and_turn_comments_into_prose():
    docstring_end, sections = split_sections(MODULE)
    assert docstring_end == 4
    code = [n for section in sections for n in section.code]
    assert code == sorted(set(code)), "no line twice, in order"
    lines = MODULE.splitlines()
    comment_lines = {8, 9, 17}
    nonblank = {n for n in range(5, len(lines) + 1) if lines[n - 1].strip()}
    assert nonblank - comment_lines <= set(code)
    assert not comment_lines & set(code)
    prose = [section.prose for section in sections if section.prose]
    assert prose == [
        ["Why the constant exists.", "It has *two* lines of prose."],
        ["Inside a function, a comment still becomes prose."],
    ]


def test_each_top_level_definition_opens_a_section():
    _, sections = split_sections(MODULE)
    assert [section.objects for section in sections if section.objects] == [["first"], ["second"], ["Third"]]


def test_pragmas_and_trailing_comments_stay_in_the_code():
    _, sections = split_sections(MODULE)
    assert 6 in sections[0].code  # import torch  # noqa: F401
    assert all("noqa" not in line for section in sections for line in section.prose)


def test_the_page_anchors_every_line_and_links_objects_back():
    page = annotated_source("pkg.mod", MODULE, lesson_title="A lesson", display_path="pkg/mod.py")
    for number in (1, 6, 10, 31):
        assert f'id="L{number}"' in page
    assert 'id="L14-L18"' in page and 'id="L29-L31"' in page
    assert "[`first`][pkg.mod.first]" in page
    assert "[`Third`][pkg.mod.Third]" in page
    assert "Lines 1–4: the lesson text" in page
    assert "It has *two* lines of prose." in page
    # the string that looks like a comment is code, highlighted as a string
    assert "# not a comment" in page


def test_code_in_a_comment_is_not_read_as_a_link():
    _, sections = split_sections("# out[i][j] is in[i][index[i][j]].\nx = 1\n")
    assert sections[0].prose == [r"out\[i\]\[j\] is in\[i\]\[index\[i\]\[j\]\]."]


def test_while_serving_an_unchanged_page_is_given_back_with_its_anchors():
    """The preview's render cache: a page renders once; the same inputs give its HTML and anchors back."""
    from types import SimpleNamespace

    from torchenstein._site import rendercache

    class Autorefs:
        def __init__(self):
            self.anchors = []

        def register_anchor(self, page, identifier, anchor=None, **kwargs):
            self.anchors.append((page, identifier))

    renders = []
    autorefs = Autorefs()

    def make_page():
        page = SimpleNamespace(file=SimpleNamespace(src_uri="tensors/x/index.md"))

        def render(config, files):
            renders.append(1)
            autorefs.register_anchor(page, "torchenstein.tensors.x.f")
            page.content, page.toc, page._title_from_render, page.present_anchor_ids = "<p>x</p>", [], "X", {"f"}

        page.render = render
        return page

    first, second, edited = make_page(), make_page(), make_page()
    rendercache.reuse_or_record(first, rendercache.key("md", "source"), autorefs)
    first.render(None, None)
    rendercache.reuse_or_record(second, rendercache.key("md", "source"), autorefs)
    second.render(None, None)
    assert len(renders) == 1, "the unchanged page was rendered again"
    assert (second.content, second._title_from_render) == ("<p>x</p>", "X")
    assert autorefs.anchors == [(first, "torchenstein.tensors.x.f"), (second, "torchenstein.tensors.x.f")]
    rendercache.reuse_or_record(edited, rendercache.key("md", "source, edited"), autorefs)
    edited.render(None, None)
    assert len(renders) == 2, "an edited lesson must be rendered again"
