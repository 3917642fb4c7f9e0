"""The ``torchenstein`` command: the whole laboratory from one terminal.

    torchenstein list                 the course map: every part, lesson and lab
    torchenstein run rmsnorm          one lesson's examples and proofs, verbosely
    torchenstein check attempts.py    your answers to the challenges, checked
    torchenstein lab deep_nets_lab    execute a lab (add --smoke for a quick run)
    torchenstein figures              draw the figures whose code changed onto the shelf, figures/
    torchenstein doctor               what is installed, which device the course will use, what is missing

A lesson is named by its module's short name (``rmsnorm``) or its full one (``torchenstein.nn.rmsnorm``);
a name that matches nothing is answered with the closest names.

```pycon
>>> from torchenstein.cli import resolve_lesson
>>> resolve_lesson("rmsnorm").module
'torchenstein.nn.rmsnorm'
>>> resolve_lesson("rmsnrom")
Traceback (most recent call last):
...
LookupError: no lesson is named 'rmsnrom'; did you mean 'rmsnorm'?

```
"""

from __future__ import annotations

import argparse
import difflib
import importlib.metadata
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from torchenstein.course import COURSE, Lesson, labs, lessons, module_path

OPTIONAL = {
    "docs": ("mkdocs", "mkdocs-material", "mkdocstrings", "mkdocs-jupyter"),
    "labs": ("jupytext", "nbclient", "ipykernel"),
    "test": ("pytest", "pytest-cov", "pytest-xdist", "hypothesis", "ruff"),
}
"""The optional dependencies by extra, as ``pyproject.toml`` lists them."""


def resolve_lesson(name: str) -> Lesson:
    """The lesson a learner means by ``name``: its short module name or its full dotted one.

    Raises:
        LookupError: if no lesson matches; the message suggests the closest names.
    """
    for lesson in lessons():
        if name in (lesson.name, lesson.module):
            return lesson
    names = [lesson.name for lesson in lessons()]
    short = name.rsplit(".", 1)[-1]
    close = [n for n in names if n.startswith(short)][:3] or difflib.get_close_matches(short, names, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else "; `torchenstein list` shows them all"
    raise LookupError(f"no lesson is named {name!r}{hint}")


def course_listing() -> str:
    """The course map as plain text, for the terminal.

    Examples:
        >>> course_listing().splitlines()[0]
        'Part 0 · The laboratory: before the first experiment'
    """
    out = []
    for part in COURSE:
        out.append(f"Part {part.number} · {part.title}")
        for number, lesson in enumerate(part.lessons, start=1):
            out.append(f"  {number:2}. {lesson.name:20} {lesson.title}")
        for lab in part.labs:
            out.append(f"   lab {lab.name:20} {lab.title}")
        if not part.lessons and not part.labs:
            out.append("      (being written: " + ", ".join(part.topics) + ")")
        out.append("")
    return "\n".join(out).rstrip("\n")


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def doctor_report() -> list[str]:
    """What the laboratory is made of: versions, threads, devices, and what is missing.

    Examples:
        >>> any(line.startswith("torch ") for line in doctor_report())
        True
    """
    import torch

    from torchenstein.lab import DEVICE_PREFERENCE, DEVICE_VARIABLE, device_available, pick_device

    hip = getattr(torch.version, "hip", None)
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else f"ROCm {hip}" if hip else "CPU only"
    lines = [
        f"python {platform.python_version()} ({sys.executable})",
        f"torch {torch.__version__} ({build})",
        f"threads: {torch.get_num_threads()} for PyTorch's operations, {os.cpu_count()} cores on this machine",
    ]
    for kind in DEVICE_PREFERENCE:
        available = device_available(kind)
        detail = ""
        if kind == "cuda" and available:
            detail = ": " + ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        lines.append(f"device {kind}: {'yes' if available else 'no'}{detail}")
    override = os.environ.get(DEVICE_VARIABLE)
    lines.append(f"the course will use: {pick_device()}" + (f" ({DEVICE_VARIABLE}={override})" if override else ""))
    for distribution in ("numpy", "matplotlib", "tqdm", "scikit-learn"):
        lines.append(f"{distribution} {_version(distribution) or 'MISSING (pip install -e .)'}")
    for extra, distributions in OPTIONAL.items():
        missing = [d for d in distributions if _version(d) is None]
        status = "all installed" if not missing else f"missing {', '.join(missing)}"
        lines.append(f"extra [{extra}]: {status}" + (f" -> pip install -e '.[{extra}]'" if missing else ""))
    return lines


def _run_lesson(name: str, pytest_args: Sequence[str]) -> int:
    lesson = resolve_lesson(name)
    root = module_path("torchenstein").parent.parent
    targets = [str(module_path(lesson.module))]
    proof = root / "tests" / f"test_{lesson.name}.py"
    if proof.is_file():
        targets.append(str(proof))
    command = [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", *targets, *pytest_args]
    print("$", " ".join(command), flush=True)
    return subprocess.call(command, cwd=root)


def _run_labs(names: Sequence[str], smoke: bool, output: str | None) -> int:
    from nbclient.exceptions import CellExecutionError

    from torchenstein.labbook import execute, find_lab

    chosen = labs() if names == ["all"] else [find_lab(name) for name in names]
    if output and len(chosen) > 1:
        raise ValueError("--output names one notebook: run one lab at a time with it")
    for lab in chosen:
        target = Path(output) if output else None
        if smoke and target is None:
            target = Path("lab-smoke") / f"{lab.name}.ipynb"
        print(f"executing {lab.script}{' at smoke size' if smoke else ''} ...", flush=True)
        try:
            written = execute(lab, smoke=smoke, output=target)
        except CellExecutionError as err:
            # nbclient's message already shows the failing cell and its traceback, as Jupyter would.
            print(f"torchenstein lab: a cell of {lab.script} failed\n{err}", file=sys.stderr)
            return 1
        print(f"wrote {written}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``torchenstein`` command; returns its exit status."""
    parser = argparse.ArgumentParser(prog="torchenstein", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("list", help="the course map: every part, lesson and lab")
    run = commands.add_parser("run", help="run one lesson's doctests and proofs, verbosely")
    run.add_argument("lesson", help="a lesson's short name (rmsnorm) or module (torchenstein.nn.rmsnorm)")
    run.add_argument("pytest_args", nargs=argparse.REMAINDER, help="anything after is passed to pytest")
    check = commands.add_parser("check", help="check your answers to the challenges")
    check.add_argument("file", nargs="?", help="a .py file of functions named after challenges (none: list them)")
    lab = commands.add_parser("lab", help="execute a lab and write its notebook")
    lab.add_argument("names", nargs="+", metavar="NAME", help="a lab's name, or 'all'")
    lab.add_argument("--smoke", action="store_true", help="a quick run (TORCHENSTEIN_SMOKE=1), written to lab-smoke/")
    lab.add_argument("--output", help="where to write the notebook (default: the lab's page)")
    figures = commands.add_parser("figures", help="draw the figures of every lesson, or of those named, that the shelf lacks")
    figures.add_argument("lessons", nargs="*", help="lesson modules, e.g. torchenstein.nn.rmsnorm")
    figures.add_argument("--out", default="figures", help="the shelf to draw onto (default: figures, the one the site takes from)")
    commands.add_parser("doctor", help="versions, devices, threads, and what is missing")
    args = parser.parse_args(argv)

    try:
        if args.command == "list":
            print(course_listing())
            return 0
        if args.command == "run":
            return _run_lesson(args.lesson, args.pytest_args)
        if args.command == "check":
            from torchenstein.challenges import main as check_main

            return check_main([args.file] if args.file else ["--list"])
        if args.command == "lab":
            return _run_labs(args.names, args.smoke, args.output)
        if args.command == "figures":
            from torchenstein.figures import main as figures_main

            return figures_main([*args.lessons, "--out", args.out])
        print("\n".join(doctor_report()))
        return 0
    except (LookupError, ValueError, FileNotFoundError) as err:
        print(f"torchenstein {args.command}: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader stopped reading (`torchenstein list | head`): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
