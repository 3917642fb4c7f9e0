r"""Lab pages as the rest of the site shows things: no script from another host, math set by KaTeX.

mkdocs-jupyter renders a lab's notebook with nbconvert, whose page template loads MathJax and Mermaid
from a CDN. The site loads nothing from elsewhere and typesets math with its bundled KaTeX, so the
loaders are dropped and the notebook's Markdown math is wrapped the way pymdownx.arithmatex wraps the
lessons' math, for the same script (``docs/assets/math.js``) to typeset.

Examples:
    >>> html = '<script src="https://cdn.example/mathjax.js"></script><div class="jp-RenderedMarkdown"><p>$x^2$</p></div>'
    >>> tidy_lab_html(html)
    '<div class="jp-RenderedMarkdown"><p><span class="arithmatex">\\(x^2\\)</span></p></div>'
"""

from __future__ import annotations

import html
import re

from torchenstein.course import Lab

# A loader from another host, or an empty one (the template's MathJax tag when no address is set).
_REMOTE_SCRIPT = re.compile(r'<script[^>]*\ssrc="(?:(?:https?:)?//[^"]*)?"[^>]*>\s*</script>', re.I)
# Inline configuration that only the dropped loaders read.
_LOADER_CONFIG = re.compile(r"<script[^>]*>(?:(?!</script>).)*?(?:MathJax|mermaid)(?:(?!</script>).)*</script>", re.I | re.S)
_MARKDOWN_CELL = re.compile(r'(<div class="[^"]*\bjp-RenderedMarkdown\b[^"]*"[^>]*>)(.*?)(</div>)', re.S)
_DISPLAY = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE = re.compile(r"(?<![\\$])\$(?!\s)([^$\n]+?)(?<!\s)\$(?!\d)")


def _wrap_math(cell: str) -> str:
    """Wrap ``$$...$$`` and ``$...$`` outside tags and code in arithmatex's elements."""
    pieces = re.split(r"(<code.*?</code>|<pre.*?</pre>|<[^>]+>)", cell, flags=re.S)
    for i in range(0, len(pieces), 2):  # the even pieces are text between tags
        text = _DISPLAY.sub(lambda m: f'<div class="arithmatex">\\[{m[1]}\\]</div>', pieces[i])
        pieces[i] = _INLINE.sub(lambda m: f'<span class="arithmatex">\\({m[1]}\\)</span>', text)
    return "".join(pieces)


def tidy_lab_html(page: str) -> str:
    """Drop remote loaders from a rendered lab page and mark its Markdown math for KaTeX."""
    page = _REMOTE_SCRIPT.sub("", page)
    page = _LOADER_CONFIG.sub("", page)
    return _MARKDOWN_CELL.sub(lambda m: m[1] + _wrap_math(m[2]) + m[3], page)



def lab_banner(lab: Lab) -> str:
    """The note above a lab page: the notebook to download, the script it was run from, how to run it."""
    return (
        '<div class="admonition tip"><p class="admonition-title">Run this lab yourself</p>'
        f'<p>This page is the notebook <a href="{lab.name}.ipynb" download><code>{lab.name}.ipynb</code></a>, '
        f"executed with every output kept. Its source is the script <code>{html.escape(lab.script)}</code> in "
        f"the course repository; <code>torchenstein lab {lab.name}</code> runs it again and rewrites this notebook, "
        f"and <code>torchenstein lab {lab.name} --smoke</code> runs every cell at a small size in seconds.</p></div>\n"
    )
