r"""The annotated source view: a lesson module as prose beside the code it explains.

Full-line comment blocks become Markdown prose; the code after each block is shown highlighted, with
its real line numbers, beside it. Each top-level function and class starts a section of its own, carries
an anchor for its line range (``#L12-L30``) and links back to its place on the lesson page. The module
docstring, which is the lesson text itself, is folded away with a link to the lesson.

Examples:
    >>> spans = object_spans("def f():\n    return 1\n\nclass C:\n    def m(self):\n        pass\n")
    >>> spans["f"], spans["C"], spans["C.m"]
    ((1, 2), (4, 6), (5, 6))
"""

from __future__ import annotations

import ast
import functools
import html
import io
import re
import tokenize
from dataclasses import dataclass, field

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from torchenstein.course import syntax_tree

# Comments that talk to tools rather than to readers stay in the code.
_PRAGMA = re.compile(r"#\s*(noqa|type:|pragma|ruff:|fmt:|pyright:|mypy:|isort:)|#!")


# Remembered by source text: the site asks for these on every build, and a preview rebuilds often.
@functools.lru_cache(maxsize=512)
def object_spans(source: str) -> dict[str, tuple[int, int]]:
    """Map each function and class of a module, and each method, to its first and last line.

    The first line is the first decorator's, so a link to the span shows the whole definition.
    Keys are qualified names relative to the module (``"Attention.forward"``).
    """
    spans: dict[str, tuple[int, int]] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                spans[prefix + node.name] = (start, node.end_lineno or node.lineno)
                if isinstance(node, ast.ClassDef):
                    visit(node.body, f"{prefix}{node.name}.")

    visit(syntax_tree(source).body, "")
    return spans


# Remembered by source text: the site asks for these on every build, and a preview rebuilds often.
@functools.lru_cache(maxsize=512)
def documented_members(source: str) -> list[str]:
    r"""The public top-level functions, classes and attributes that carry a docstring, in source order.

    These are what a lesson page documents, one after another, beneath the lesson text.

    Examples:
        >>> documented_members('X = 1\n"A constant."\ndef _hidden():\n    "Doc."\ndef f():\n    "Doc."\n')
        ['X', 'f']
    """
    body = syntax_tree(source).body
    names = []
    for node, following in zip(body, [*body[1:], None], strict=True):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = node.name if ast.get_docstring(node) else None
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            documented = (
                isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            )
            name = targets[0].id if documented and len(targets) == 1 and isinstance(targets[0], ast.Name) else None
        else:
            name = None
        if name and not name.startswith("_"):
            names.append(name)
    return names


def _comment_lines(source: str) -> dict[int, str]:
    """The lines that hold nothing but a comment meant for readers, with the comment's text."""
    found = {}
    lines = source.splitlines()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        row, col = token.start
        if lines[row - 1][:col].strip() or _PRAGMA.match(token.string):
            continue
        text = token.string[1:]
        found[row] = text[1:] if text.startswith(" ") else text
    return found


# A link Markdown should keep: a reference to the package's own objects, or an inline link.
_LINK_OR_BRACKET = re.compile(r"\[[^\[\]]*\]\[torchenstein\.[\w.]+\]|\[[^\[\]]*\]\([^()\s]*\)|[\[\]]")


def _comment_prose(text: str) -> str:
    r"""A comment line as Markdown, with code-like ``x[i][j]`` kept as text rather than read as a link.

    Comments may say ``scores[i][j]`` without backticks; Markdown would take that for a reference link
    and the strict build would fail. Outside code spans every bracket is escaped, except those of a
    reference to the package's own objects or of an inline link.

    Examples:
        >>> print(_comment_prose("out[i][j] sums, see [it][torchenstein.lab.pick_device]; `a[0][1]` stays"))
        out\[i\]\[j\] sums, see [it][torchenstein.lab.pick_device]; `a[0][1]` stays
    """
    pieces = re.split(r"(`[^`]*`)", text)
    for i in range(0, len(pieces), 2):  # the even pieces lie outside code spans
        pieces[i] = _LINK_OR_BRACKET.sub(lambda m: m[0] if len(m[0]) > 1 else "\\" + m[0], pieces[i])
    return "".join(pieces)


def _highlighted_lines(source: str) -> list[str]:
    """The module highlighted as a whole (so strings spanning lines lex right), split into lines."""
    lexer = PythonLexer(stripnl=False, ensurenl=True)
    rendered = highlight(source, lexer, HtmlFormatter(nowrap=True))
    lines = rendered.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    expected = len(source.splitlines())
    if len(lines) != expected:  # pragma: no cover - would mean Pygments changed how it splits lines
        raise RuntimeError(f"highlighting gave {len(lines)} lines for a source of {expected}")
    return lines


@dataclass
class Section:
    """A stretch of the module: the prose of one comment block and the code that follows it."""

    prose: list[str] = field(default_factory=list)
    code: list[int] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)

    def has_code(self) -> bool:
        """Whether any line of code (not just blank lines) has joined the section yet."""
        return bool(self.code)


def _docstring_end(tree: ast.Module) -> int:
    """The last line of the module docstring, or 0 when the module has none."""
    first = tree.body[0] if tree.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first.end_lineno or first.lineno
    return 0


def split_sections(source: str) -> tuple[int, list[Section]]:
    """Cut a module into sections at each comment block and each top-level definition.

    Returns:
        The last line of the module docstring (0 if none) and the sections after it.
    """
    tree = syntax_tree(source)
    docstring_end = _docstring_end(tree)
    comments = _comment_lines(source)
    starts = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            starts[min([node.lineno, *(d.lineno for d in node.decorator_list)])] = node.name
    lines = source.splitlines()
    sections = [Section()]
    previous_was_comment = False
    for number in range(docstring_end + 1, len(lines) + 1):
        current = sections[-1]
        if number in comments:
            if not previous_was_comment and (current.has_code() or current.prose):
                current = Section()
                sections.append(current)
            current.prose.append(_comment_prose(comments[number]))
            previous_was_comment = True
            continue
        previous_was_comment = False
        if number in starts:
            if current.has_code():
                current = Section()
                sections.append(current)
            current.objects.append(starts[number])
        if lines[number - 1].strip() or current.has_code():
            current.code.append(number)
    for section in sections:
        while section.code and not lines[section.code[-1] - 1].strip():
            section.code.pop()
    return docstring_end, [s for s in sections if s.code or s.prose]


def _code_block(numbers: list[int], highlighted: list[str], anchors: dict[int, list[str]]) -> str:
    """One highlighted block of lines, each with its line number and anchor; no blank source lines."""
    rows = []
    for n in numbers:
        extra = "".join(f'<span class="tl-anchor" id="{a}"></span>' for a in anchors.get(n, ()))
        rows.append(f'{extra}<span class="tl-line" id="L{n}" data-n="{n}">{highlighted[n - 1] or " "}</span>')
    return '<div class="highlight tl-code"><pre><code>' + "\n".join(rows) + "</code></pre></div>"


# Remembered by source text: the site asks for these on every build, and a preview rebuilds often.
@functools.lru_cache(maxsize=512)
def annotated_source(module: str, source: str, *, lesson_title: str, display_path: str) -> str:
    r"""The Markdown page of a lesson's annotated source.

    Args:
        module: the dotted module path, used to link objects back to the lesson.
        source: the module's source text.
        lesson_title: the lesson's title, for the link back to it.
        display_path: the file path shown in the heading, ``torchenstein/tensors/creation.py``.

    Examples:
        >>> page = annotated_source("pkg.m", '"Doc."\n\n# Why.\ndef f():\n    "F."\n    return 1\n',
        ...                         lesson_title="M", display_path="pkg/m.py")
        >>> 'id="L4-L6"' in page and "[`f`][pkg.m.f]" in page and "Why." in page
        True
    """
    highlighted = _highlighted_lines(source)
    spans = object_spans(source)
    anchors: dict[int, list[str]] = {}
    for start, end in spans.values():
        anchors.setdefault(start, []).append(f"L{start}-L{end}")
    docstring_end, sections = split_sections(source)
    documented = set(documented_members(source))

    out = [
        "---",
        "hide:",
        "  - navigation",
        "  - toc",
        # The code is long and its lesson page already holds every word of prose: search the lessons.
        "search:",
        "  exclude: true",
        "---",
        "",
        f"# The annotated source of `{display_path}`",
        "",
        f'<p class="tl-source-intro">The code of <a href="../">{html.escape(lesson_title)}</a>, every line of it, '
        "with its comments set as prose beside the code they explain. Each definition links back to its "
        "place in the lesson.</p>",
        "",
        '<div class="tl-source" markdown>',
        "",
    ]
    if docstring_end:
        out += [
            '<details class="tl-docstring" markdown>',
            f"<summary>Lines 1–{docstring_end}: the lesson text, which the "
            '<a href="../">lesson page</a> shows typeset</summary>',
            "",
            _code_block(list(range(1, docstring_end + 1)), highlighted, anchors),
            "",
            "</details>",
            "",
        ]
    for section in sections:
        out += ['<div class="tl-section" markdown>', '<div class="tl-prose" markdown>', ""]
        out += section.prose
        shown = [name for name in section.objects if name in documented]
        if shown:
            links = ", ".join(f"[`{name}`][{module}.{name}]" for name in shown)
            out += ["", f'<p class="tl-back" markdown>Read {links} in the lesson ↩</p>']
        out += ["", "</div>"]
        out += [_code_block(section.code, highlighted, anchors) if section.code else '<div class="tl-code"></div>']
        out += ["</div>", ""]
    out += ["</div>", ""]
    return "\n".join(out)


# A source view is mostly highlighted code: thousands of spans that Markdown would parse for nothing. The
# site hands Markdown the page with each code block stashed behind a placeholder, and puts the blocks
# back into the HTML Markdown returns.
_CODE_BLOCK = re.compile(r'<div class="highlight tl-code"><pre><code>.*?</code></pre></div>', re.S)
_STASHED = re.compile(r'<div class="tl-stash" data-block="(\d+)"></div>')


@functools.lru_cache(maxsize=256)
def stash_code_blocks(page: str) -> tuple[str, tuple[str, ...]]:
    r"""Replace each highlighted code block of a source view by a placeholder; return both.

    Remembered: every rebuild of ``mkdocs serve`` asks again for every lesson's view.

    Examples:
        >>> page, blocks = stash_code_blocks('<p>Why.</p>\n<div class="highlight tl-code"><pre><code>x = 1</code></pre></div>')
        >>> page
        '<p>Why.</p>\n<div class="tl-stash" data-block="0"></div>'
        >>> restore_code_blocks(page, blocks) == '<p>Why.</p>\n' + blocks[0]
        True
    """
    blocks: list[str] = []

    def stash(match: re.Match) -> str:
        blocks.append(match[0])
        return f'<div class="tl-stash" data-block="{len(blocks) - 1}"></div>'

    return _CODE_BLOCK.sub(stash, page), tuple(blocks)


def restore_code_blocks(html_page: str, blocks: tuple[str, ...]) -> str:
    """Put the stashed code blocks back where their placeholders are."""
    return _STASHED.sub(lambda match: blocks[int(match[1])], html_page)
