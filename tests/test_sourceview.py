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
