"""Time the site build, cold and warm, and show where the time goes.

Cold means no cache at all (the drawn figures and the rendered lab pages are deleted first); warm means
the caches of the previous build are there. Each of those builds runs in a fresh process, as
`mkdocs build` does. A serve rebuild is what `./scripts/serve` does after a lesson is edited: a second
build in the same process, after a sentence is added to one lesson's text (and taken out again). Run it
through `scripts/bench-site`.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHES = [ROOT / ".cache" / "torchenstein", ROOT / ".cache" / "mkdocs-jupyter"]


def one_build() -> dict[str, float]:
    """Build the site once in this process; return the total and each stage's seconds."""
    from mkdocs import plugins
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.structure.pages import Page

    stages: collections.Counter[str] = collections.Counter()
    run_event = plugins.PluginCollection.run_event

    def timed_event(self, name, *args, **kwargs):
        started = time.perf_counter()
        try:
            return run_event(self, name, *args, **kwargs)
        finally:
            stages[f"event {name}"] += time.perf_counter() - started

    render = Page.render

    def timed_render(self, config, files):
        started = time.perf_counter()
        try:
            return render(self, config, files)
        finally:
            uri = self.file.src_uri
            kind = "source views" if uri.endswith("source.md") else "labs" if uri.endswith(".ipynb") else "pages"
            stages[f"render {kind}"] += time.perf_counter() - started

    plugins.PluginCollection.run_event = timed_event
    Page.render = timed_render
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as site:
        build(load_config(str(ROOT / "mkdocs.yml"), strict=True, site_dir=site))
    stages["total"] = time.perf_counter() - started
    return dict(stages)


def serve_rebuilds(runs: int) -> list[float]:
    """Build once, then time a rebuild after each of ``runs`` edits of a lesson's text, in one process."""
    import logging
    import textwrap

    from torchenstein.course import lessons, module_path

    logging.disable(logging.WARNING)
    lesson = lessons()[len(lessons()) // 2]
    path = module_path(lesson.module)
    source = path.read_text(encoding="utf-8")
    seconds = []
    try:
        one_build()
        for edit in range(runs):
            sentence = f"The Professor edits this lesson ({edit + 1}). "
            path.write_text(source.replace('"""', '"""' + sentence, 1), encoding="utf-8")
            seconds.append(one_build()["total"])
    finally:
        path.write_text(source, encoding="utf-8")
    print(textwrap.shorten(f"edited {lesson.module}", 100))
    return seconds


def measure(runs: int, *, cold: bool) -> list[dict[str, float]]:
    results = []
    for _ in range(runs):
        if cold:
            for cache in CACHES:
                shutil.rmtree(cache, ignore_errors=True)
        out = subprocess.run(
            [sys.executable, __file__, "--one"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def report(label: str, results: list[dict[str, float]]) -> None:
    total = statistics.median(r["total"] for r in results)
    each = ", ".join(f"{r['total']:.1f}" for r in results)
    print(f"{label}: {total:.1f} s (median of {len(results)}: {each})")
    best = min(results, key=lambda r: abs(r["total"] - total))
    for stage, seconds in sorted(best.items(), key=lambda kv: -kv[1]):
        if stage != "total" and seconds >= 0.05:
            print(f"  {stage:28} {seconds:6.2f} s  {100 * seconds / best['total']:5.1f}%")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="builds of each kind (default 2)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rebuilds", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        import logging

        logging.disable(logging.WARNING)
        print(json.dumps(one_build()))
        return 0
    if args.rebuilds:
        print(json.dumps(serve_rebuilds(args.runs)))
        return 0
    from torchenstein.course import labs, lessons

    print(f"{len(lessons())} lessons, {len(labs())} labs")
    cold = measure(args.runs, cold=True)
    warm = measure(args.runs, cold=False)
    report("cold build", cold)
    report("warm build", warm)
    per_lesson = statistics.median(r["total"] for r in cold) / len(lessons())
    print(f"cold build per lesson: {per_lesson:.2f} s")
    out = subprocess.run(
        [sys.executable, __file__, "--rebuilds", "--runs", str(args.runs)], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    rebuilds = json.loads(out.strip().splitlines()[-1])
    each = ", ".join(f"{r:.1f}" for r in rebuilds)
    print(f"serve rebuild after a lesson edit: {statistics.median(rebuilds):.1f} s (median of {len(rebuilds)}: {each})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
