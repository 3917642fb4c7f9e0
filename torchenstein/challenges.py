"""Challenges: every lesson's exercises, their checkers, and a way to test your own attempts.

A lesson's challenge is a function it asks you to write, say ``causal_mask``. The lesson ships the
Professor's own solution under that name and a checker ``check_causal_mask(candidate)`` that raises
``AssertionError`` with a helpful message when the candidate is wrong. The course's tests run every
checker on every solution; you can run the same checker on yours:

```pycon
>>> from torchenstein.challenges import find_challenges
>>> len(find_challenges()) > 0
True

```

Or write your attempts in a file, with functions named after the challenges, and run:

    python -m torchenstein.challenges my_attempts.py
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from torchenstein.course import lessons


@dataclass(frozen=True)
class Challenge:
    """One challenge: its lesson, the reference solution, and the checker both must pass."""

    name: str
    module: str
    solution: Callable
    check: Callable[[Callable], None]


def challenges_in(module: ModuleType) -> dict[str, Challenge]:
    """The challenges a lesson module defines: each ``check_<name>`` paired with its solution ``<name>``.

    Raises:
        LookupError: if a checker has no solution of the same name beside it.

    Examples:
        >>> import torchenstein.transformers.attention as lesson
        >>> all(c.module == lesson.__name__ for c in challenges_in(lesson).values())
        True
    """
    found = {}
    for attr, check in vars(module).items():
        if not attr.startswith("check_") or not callable(check):
            continue
        name = attr.removeprefix("check_")
        # A challenge to write a class is checked by check_<snake_case> and solved by <CamelCase>.
        solution = getattr(module, name, None) or getattr(module, name.title().replace("_", ""), None)
        if not callable(solution):
            raise LookupError(f"{module.__name__}.{attr} checks a challenge, but there is no solution named {name!r}")
        found[name] = Challenge(name, module.__name__, solution, check)
    return found


def find_challenges() -> dict[str, Challenge]:
    """Every challenge in the course, by name, in teaching order.

    Raises:
        LookupError: if two lessons use the same challenge name.
    """
    found: dict[str, Challenge] = {}
    for lesson in lessons():
        for name, challenge in challenges_in(importlib.import_module(lesson.module)).items():
            if name in found:
                raise LookupError(f"challenge {name!r} is defined by both {found[name].module} and {challenge.module}")
            found[name] = challenge
    return found


def load_attempts(path: str | Path) -> ModuleType:
    """Import a learner's file of attempts as a module.

    Raises:
        FileNotFoundError: if there is no such file.
        ValueError: if the file is not a ``.py`` file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file of attempts at {str(path)!r}")
    if path.suffix != ".py":
        raise ValueError(f"attempts must be a .py file, got {str(path)!r}")
    spec = importlib.util.spec_from_file_location("torchenstein_attempts", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_attempts(attempts: ModuleType) -> list[tuple[str, str | None]]:
    """Run each challenge's checker on the attempt of the same name.

    Returns:
        ``(name, None)`` for each attempt that passed and ``(name, message)`` for each that failed,
        in teaching order. Challenges with no attempt in the file are left out.
    """
    results = []
    for name, challenge in find_challenges().items():
        attempt = getattr(attempts, name, None)
        if not callable(attempt):
            continue
        try:
            challenge.check(attempt)
        except Exception as err:  # a learner's attempt may fail in any way; report it, do not crash
            results.append((name, f"{type(err).__name__}: {err}"))
        else:
            results.append((name, None))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Check a file of attempts and print one line per challenge; return 0 when all of them pass."""
    parser = argparse.ArgumentParser(
        prog="python -m torchenstein.challenges",
        description="Check your attempts at the course's challenges against the same checks as the solutions.",
    )
    parser.add_argument("attempts", nargs="?", help="a .py file whose functions are named after challenges")
    parser.add_argument("--list", action="store_true", help="list every challenge and its lesson")
    args = parser.parse_args(argv)
    if args.list or args.attempts is None:
        for name, challenge in find_challenges().items():
            print(f"{name:32} {challenge.module}")
        return 0
    try:
        results = check_attempts(load_attempts(args.attempts))
    except (FileNotFoundError, ValueError, SyntaxError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not results:
        print(f"error: {args.attempts} defines no function named after a challenge (see --list)", file=sys.stderr)
        return 2
    for name, failure in results:
        print(f"{'PASS' if failure is None else 'FAIL'} {name}" + ("" if failure is None else f": {failure}"))
    return 0 if all(failure is None for _, failure in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
