"""The strict site build: every lesson has its page, its objects, its source view and its figures,
and the site loads nothing from another host."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from mkdocs.commands.build import build
from mkdocs.config import load_config
from mkdocs.exceptions import Abort

from torchenstein._site.pages import part_label
from torchenstein._site.sourceview import documented_members, object_spans
from torchenstein.course import COURSE, labs, lessons, module_path

try:
    import coverage
except ImportError:  # the suite also runs without coverage
    coverage = None

ROOT = Path(__file__).resolve().parents[1]
LESSONS = lessons()


@contextlib.contextmanager
def untraced():
    """Pause coverage measurement for a site build.

    The build is Markdown, templates and highlighting, all pure Python: traced for coverage line by
    line it takes twice as long, the longest thing in the suite. So the first build runs untraced, and
    the second, from the caches, is traced for the hooks' coverage. A test process of pytest-xdist runs
    two measurements, one under the other, and stopping the top one resumes the other: every one is
    stopped, and they start again in the order they were.
    """
    stopped = []
    while coverage is not None and (tracer := coverage.Coverage.current()) is not None:
        tracer.stop()
        stopped.append(tracer)
    try:
        yield
    finally:
        for tracer in reversed(stopped):
            tracer.start()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """Build the whole site once, strictly: any warning (a broken reference, say) fails the build."""
    site_dir = tmp_path_factory.mktemp("site")
    config = load_config(str(ROOT / "mkdocs.yml"), strict=True, site_dir=str(site_dir))
    with untraced():
        build(config)
    return site_dir


class Page(HTMLParser):
    """The parts of a built page the tests look at: ids, links, images, headings, external loads."""

    def __init__(self, path: Path):
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.images: list[str] = []
        self.h1: list[str] = []
        self.loads: list[str] = []
        self._in_h1 = False
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag == "img":
            self.images.append(attrs["src"])
        if tag in {"script", "img", "iframe", "source", "video", "audio"} and attrs.get("src"):
            self.loads.append(attrs["src"])
        if tag == "link" and attrs.get("href") and attrs.get("rel") not in {"canonical", "prev", "next"}:
            self.loads.append(attrs["href"])
        if tag == "h1":
            self._in_h1 = True
            self.h1.append("")

    def handle_endtag(self, tag):
        if tag == "h1":
            self._in_h1 = False

    def handle_data(self, data):
        if self._in_h1:
            self.h1[-1] += data


@functools.cache
def page_of(site: Path, url: str) -> Page:
    """A built page, parsed once however many tests look at it (the tests only read it)."""
    return Page(site / url / "index.html")


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)
def test_each_lesson_page_has_its_title_once_and_every_object(site, lesson):
    page = page_of(site, lesson.url)
    source = module_path(lesson.module).read_text(encoding="utf-8")
    title = re.search(r"^# (.+)$", source, re.M)[1]
    assert [h.strip("¶ \n") for h in page.h1] == [title]
    assert "wzxhzdk" not in (site / lesson.url / "index.html").read_text(encoding="utf-8"), "a placeholder leaked"
    members = documented_members(source)
    assert members, "a lesson teaches through at least one function or class"
    for name in members:
        assert f"{lesson.module}.{name}" in page.ids, f"{name} is missing from the page"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)
def test_each_object_links_to_its_lines_in_the_source_view(site, lesson):
    page = page_of(site, lesson.url)
    source_page = page_of(site, lesson.url + "source/")
    spans = object_spans(module_path(lesson.module).read_text(encoding="utf-8"))
    for name in documented_members(module_path(lesson.module).read_text(encoding="utf-8")):
        if name not in spans:
            continue  # an attribute: it has no lines of its own to point at
        start, end = spans[name]
        assert f"source/#L{start}-L{end}" in page.links, f"{name} has no link to its source"
        assert {f"L{start}-L{end}", f"L{start}", f"L{end}"} <= source_page.ids


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)
def test_the_source_view_numbers_every_line_and_links_back(site, lesson):
    source = module_path(lesson.module).read_text(encoding="utf-8")
    page = page_of(site, lesson.url + "source/")
    lines = source.splitlines()
    numbered = {int(i[1:]) for i in page.ids if re.fullmatch(r"L\d+", i)}
    code_lines = {n for n, line in enumerate(lines, 1) if line.strip() and not line.strip().startswith("#")}
    assert code_lines <= numbered
    spans = object_spans(source)
    for name in documented_members(source):
        if name in spans:
            assert f"../#{lesson.module}.{name}" in page.links, f"the source view does not link {name} back"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)
def test_every_figure_a_page_shows_exists(site, lesson):
    page = page_of(site, lesson.url)
    for src in page.images:
        assert (site / lesson.url / src).resolve().is_file(), f"{lesson.url} shows {src}, which was not drawn"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)
def test_each_lesson_page_offers_its_notebook(site, lesson):
    assert f"{lesson.name}.ipynb" in page_of(site, lesson.url).links
    notebook = json.loads((site / lesson.url / f"{lesson.name}.ipynb").read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4 and any(cell["cell_type"] == "code" for cell in notebook["cells"])


def test_no_figure_is_heavier_than_a_page_should_carry(site):
    """A figure with thousands of vector cells makes a page slow to load: draw such areas as an image."""
    heavy = {path.relative_to(site).as_posix(): path.stat().st_size for path in site.rglob("plot_*.svg")}
    assert heavy and not {path: size for path, size in heavy.items() if size > 1_000_000}


def test_a_build_from_the_caches_is_the_same_site_byte_for_byte(site, tmp_path):
    """The second build reuses the figures, pages, source views and search entries the first one kept."""
    again = tmp_path / "again"
    # Traced, unlike the first build: from the caches it takes a few seconds, and it is what reaches the
    # site's hooks for the coverage report.
    build(load_config(str(ROOT / "mkdocs.yml"), strict=True, site_dir=str(again)))
    first = {p.relative_to(site): p.read_bytes() for p in site.rglob("*") if p.is_file()}
    second = {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    assert first.keys() == second.keys()
    assert [str(path) for path in first if first[path] != second[path]] == []


def test_search_indexes_each_section_once(site):
    docs = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))["docs"]
    locations = [doc["location"] for doc in docs]
    assert len(locations) == len(set(locations))
    assert not any("/source/" in location for location in locations), "source views stay out of search"


def test_next_links_walk_the_course_in_order(site):
    """Following each page's *Next* link from the home page visits every lesson in the course order."""
    walked, url = [], ""
    while url is not None and len(walked) <= 100:
        walked.append(url)
        html = (site / url / "index.html").read_text(encoding="utf-8")
        found = re.search(r'<a href="([^"]+)" class="md-footer__link md-footer__link--next"', html)
        url = _normalise(url + found[1]) if found else None
    assert [u for u in walked if u in {lesson.url for lesson in LESSONS}] == [lesson.url for lesson in LESSONS]


def _normalise(url: str) -> str:
    parts: list[str] = []
    for piece in url.split("/"):
        if piece == "..":
            parts.pop()
        elif piece not in {"", "."}:
            parts.append(piece)
    return "/".join(parts) + "/" if parts else ""


def test_the_tabs_name_exactly_the_parts_with_lessons(site):
    html = (site / LESSONS[0].url / "index.html").read_text(encoding="utf-8")
    for part in COURSE:
        assert (part_label(part) in html) == bool(part.lessons)


@pytest.mark.parametrize("part", [part for part in COURSE if part.lessons], ids=lambda part: part.slug)
def test_the_sidebar_lists_every_lesson_of_a_part_by_title(site, part):
    """No lesson hides behind its part's heading: each is a link with its own title on its siblings' pages."""
    here = part.lessons[-1]
    html = (site / here.url / "index.html").read_text(encoding="utf-8")
    for lesson in part.lessons:
        href = "./" if lesson is here else f"../{lesson.name}/"
        link = rf'<a href="{re.escape(href)}" class="md-nav__link[^"]*">\s*<span class="md-ellipsis">\s*{re.escape(lesson.title)}\s*<'
        assert re.search(link, html), f"{lesson.title} is missing from the sidebar of {here.url}"


def test_the_course_map_names_every_part_and_links_every_lesson(site):
    page = page_of(site, "course-map/")
    html = (site / "course-map" / "index.html").read_text(encoding="utf-8")
    for part in COURSE:
        assert part_label(part) in html
    for lesson in LESSONS:
        assert f"../{lesson.url}" in page.links


def test_welcome_pages_exist(site):
    for url in ("", "origin-story/", "running-examples/"):
        assert page_of(site, url).h1, f"/{url} has no heading"


def loads_of(html: str) -> list[str]:
    """What a page makes the browser fetch: the sources of its scripts and media, its linked files.

    (`Page` finds the same; a regular expression reads the ninety large pages many times faster.)
    """
    found = re.findall(r'<(?:script|img|iframe|source|video|audio)\b[^>]*?\ssrc="([^"]+)"', html)
    for attrs in re.findall(r"<link\b([^>]*)>", html):
        rel, href = re.search(r'\srel="([^"]*)"', attrs), re.search(r'\shref="([^"]*)"', attrs)
        if href and (rel is None or rel.group(1) not in {"canonical", "prev", "next"}):
            found.append(href.group(1))
    return found


def test_loads_of_finds_what_the_page_parser_finds(site):
    path = site / LESSONS[1].url / "index.html"
    assert sorted(loads_of(path.read_text(encoding="utf-8"))) == sorted(Page(path).loads)


def test_the_site_loads_nothing_from_another_host(site):
    offenders = []
    for path in site.rglob("*.html"):
        for load in loads_of(path.read_text(encoding="utf-8")):
            if re.match(r"(https?:)?//", load):
                offenders.append(f"{path.relative_to(site)}: {load}")
    for path in site.rglob("*.css"):
        for url in re.findall(r"url\(\s*['\"]?((?:https?:)?//[^)'\"]+)", path.read_text(encoding="utf-8")):
            offenders.append(f"{path.relative_to(site)}: {url}")
    assert not offenders


def test_math_is_bundled_and_marked_for_typesetting(site):
    katex = site / "assets" / "vendor" / "katex"
    assert (katex / "katex.min.js").is_file() and (katex / "katex.min.css").is_file()
    fonts = re.findall(r"url\((fonts/[^)]+)\)", (katex / "katex.min.css").read_text(encoding="utf-8"))
    assert fonts and all((katex / font).is_file() for font in fonts)
    assert 'class="arithmatex"' in (site / LESSONS[-1].url / "index.html").read_text(encoding="utf-8")


class WarningRecords(logging.Handler):
    """The warnings a logger tree emits while attached (the suite runs without pytest's log capture)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_reference_to_nothing_fails_the_strict_build(tmp_path):
    """The site's own configuration, on one page that names an object the package does not have."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Page\n\nSee [`attention`][torchenstein.transformers.nowhere].\n")
    config_text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for tied_to_the_repository in ("hooks:\n  - torchenstein/_site/hooks.py\n", "watch:\n  - torchenstein\n"):
        assert tied_to_the_repository in config_text
        config_text = config_text.replace(tied_to_the_repository, "")
    (tmp_path / "mkdocs.yml").write_text(config_text)
    config = load_config(str(tmp_path / "mkdocs.yml"), strict=True, site_dir=str(tmp_path / "site"))
    records = WarningRecords()
    mkdocs_log = logging.getLogger("mkdocs")  # MkDocs and every plugin log under it
    mkdocs_log.addHandler(records)
    try:
        with pytest.raises(Abort, match="strict mode"):
            build(config)
    finally:
        mkdocs_log.removeHandler(records)
    warnings = records.messages
    assert warnings and all("torchenstein.transformers.nowhere" in w for w in warnings), warnings


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)")
def test_math_is_typeset_in_a_browser_with_the_network_off(site, tmp_path):
    lesson = LESSONS[-1]
    result = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path}",
            "--host-resolver-rules=MAP * ~NOTFOUND", "--allow-file-access-from-files",
            "--virtual-time-budget=5000", "--dump-dom", (site / lesson.url / "index.html").as_uri(),
        ],
        capture_output=True, text=True, timeout=120, check=True,
    )
    dom = result.stdout
    assert 'class="katex"' in dom or "class=\"katex-display\"" in dom
    assert dom.count("data-typeset") == dom.count('class="arithmatex"'), "some formulas were left untypeset"


# The site in a real browser: Playwright driving the system's Chromium, over a local HTTP server (the
# search index loads in a web worker, which a file:// page may not start). Skipped, with the reason,
# where either is missing; ./.ci/run installs Chromium when it can.
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None

needs_browser = pytest.mark.skipif(
    CHROMIUM is None or sync_playwright is None,
    reason="browser tests need Debian's chromium (apt-get install chromium) and the playwright package",
)


@pytest.fixture(scope="module")
def served(site):
    """The built site on a local port, for as long as this module's tests run."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser(served):
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, served):
    """A fresh tab that records console errors and refuses every request that leaves the machine."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    context.route(re.compile(r"^(?!http://127\.0\.0\.1:)"), lambda route: route.abort())
    tab = context.new_page()
    tab.errors = []
    tab.on("console", lambda message: tab.errors.append(message.text) if message.type == "error" else None)
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    tab.set_default_timeout(20_000)
    yield tab
    context.close()


RMSNORM = next(lesson for lesson in LESSONS if lesson.name == "rmsnorm")


@needs_browser
def test_a_source_link_lands_on_its_lines_highlighted_and_links_back(page, served):
    page.goto(served + RMSNORM.url)
    link = page.locator(".tl-source-link a").first
    first, last = map(int, re.findall(r"\d+", link.get_attribute("href")))
    link.click()
    page.wait_for_url(re.compile(rf"source/#L{first}-L{last}$"))
    lit = page.locator(".tl-line.tl-hl")
    lit.first.wait_for()
    # Every code line of the span is lit (comment lines are set as prose beside it), and no other.
    numbers = [int(n) for n in lit.evaluate_all("lines => lines.map(line => line.dataset.n)")]
    assert numbers[0] == first and numbers[-1] <= last and all(first <= n <= last for n in numbers)
    assert page.locator(f"#L{first}").is_visible()
    # Each definition in the source view links back to its place on the lesson page.
    back = page.locator('a.autorefs[href^="../#torchenstein.nn.rmsnorm."]').first
    target = back.get_attribute("href").split("#")[1]
    back.click()
    page.wait_for_url(re.compile(rf"/{RMSNORM.url}#{re.escape(target)}$"))
    assert page.locator(f'[id="{target}"]').is_visible()
    assert not page.errors


@needs_browser
def test_search_finds_a_lesson_by_a_word_of_its_text_offline(page, served):
    page.goto(served)
    page.locator("label.md-search__icon, .md-search__input").first.click()
    page.locator(".md-search__input").fill("Zhang")  # the RMSNorm lesson cites Zhang and Sennrich
    result = page.locator(".md-search-result__link").first
    result.wait_for(timeout=90_000)  # the search worker builds its index in the page, offline
    assert RMSNORM.url in result.get_attribute("href")
    assert not page.errors


@needs_browser
def test_the_dark_toggle_switches_the_scheme(page, served):
    page.goto(served + RMSNORM.url)
    before = page.evaluate("document.body.getAttribute('data-md-color-scheme')")
    page.locator("form[data-md-component=palette] label:visible").first.click()
    after = page.evaluate("document.body.getAttribute('data-md-color-scheme')")
    assert {before, after} == {"default", "slate"}


@needs_browser
def test_math_is_typeset_on_lesson_and_lab_pages(page, served):
    for url in (RMSNORM.url, labs()[0].url):
        page.goto(served + url)
        page.locator(".katex").first.wait_for()
        untypeset = page.evaluate("document.querySelectorAll('.arithmatex:not([data-typeset])').length")
        assert untypeset == 0, f"{url}: {untypeset} formulas left untypeset"


@needs_browser
def test_the_copy_button_yields_prompt_free_code(page, served, browser):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(served + RMSNORM.url)
    block = page.locator(".language-pycon").first
    text = block.locator("code").inner_text()
    expected = "\n".join(
        line[4:] for line in text.splitlines() if line.startswith((">>> ", "... "))
    ).rstrip()
    assert block.get_attribute("data-copy") == expected
    block.hover()
    block.locator('button[data-md-type="copy"], .md-clipboard').first.click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == expected and ">>>" not in copied
    assert not page.errors


@needs_browser
def test_a_lab_page_renders_its_figures_and_offers_its_notebook(page, served):
    lab = labs()[0]
    page.goto(served + lab.url)
    figures = page.locator('.jp-OutputArea-output img[src^="data:image/png"]')
    figures.first.wait_for()
    assert page.evaluate("(img) => img.naturalWidth", figures.first.element_handle()) > 0
    assert page.locator(f'a[href$="{lab.name}.ipynb"]').count() >= 1
    assert not page.errors


@needs_browser
@pytest.mark.parametrize("url", ["", "course-map/", RMSNORM.url, RMSNORM.url + "source/", "labs/"])
def test_no_page_logs_a_console_error(page, served, url):
    if url == "labs/":
        url = labs()[0].url
    page.goto(served + url)
    page.wait_for_load_state("networkidle")
    assert not page.errors, page.errors


@needs_browser
def test_a_lesson_page_at_400px_has_no_horizontal_overflow(browser, served):
    context = browser.new_context(viewport={"width": 400, "height": 800})
    tab = context.new_page()
    tab.goto(served + RMSNORM.url)
    tab.wait_for_load_state("networkidle")
    overflow = tab.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    context.close()
    assert overflow <= 0, f"the page is {overflow}px wider than a 400px screen"


def test_every_link_between_pages_lands_on_a_page(site):
    # MkDocs resolves a lesson's links to other pages, and leaves one to a page that does not exist as it
    # was written, without a warning: so every relative link of every page is followed here.
    broken = []
    for page in site.rglob("*.html"):
        if page.name == "404.html":  # its links are absolute, for any depth
            continue
        for href in re.findall(r'href="([^"#?]+)', page.read_text(encoding="utf-8")):
            if href.startswith(("http:", "https:", "mailto:", "data:", "javascript:", "/")):
                continue
            target = (page.parent / href).resolve()
            if not (target.is_file() or (target / "index.html").is_file()):
                broken.append(f"{page.relative_to(site)} -> {href}")
    assert not broken, "links to nothing:\n" + "\n".join(broken)
