"""Every challenge's solution passes its own checker, and learners can check their attempts."""

from __future__ import annotations

import types

import pytest

from torchenstein import challenges
from torchenstein.challenges import challenges_in, check_attempts, find_challenges, main
from torchenstein.course import lessons

CHALLENGES = find_challenges()


def test_every_lesson_sets_at_least_one_challenge():
    modules = {challenge.module for challenge in CHALLENGES.values()}
    assert modules == {lesson.module for lesson in lessons()}


@pytest.mark.parametrize("name", sorted(CHALLENGES))
def test_the_professors_solution_passes_its_checker(name):
    challenge = CHALLENGES[name]
    assert challenge.check(challenge.solution) is None


@pytest.mark.parametrize("name", sorted(CHALLENGES))
def test_a_checker_rejects_an_attempt_that_returns_nothing(name):
    with pytest.raises(Exception):  # noqa: B017 - any failure will do; the checker must not pass it
        CHALLENGES[name].check(lambda *args, **kwargs: None)


def test_a_checker_without_a_solution_is_reported():
    module = types.ModuleType("lesson")
    module.check_flying = lambda candidate: None
    with pytest.raises(LookupError, match="no solution named 'flying'"):
        challenges_in(module)


def _attempts(tmp_path, text):
    path = tmp_path / "attempts.py"
    path.write_text(text)
    return path


def test_attempts_are_checked_by_name(tmp_path):
    right, wrong = sorted(CHALLENGES)[:2]
    path = _attempts(
        tmp_path,
        f"from {CHALLENGES[right].module} import {right}\n\ndef {wrong}(*args, **kwargs):\n    return None\n",
    )
    results = dict(check_attempts(challenges.load_attempts(path)))
    assert results[right] is None
    assert results[wrong] is not None


def test_the_command_line_reports_pass_and_fail(tmp_path, capsys):
    right, wrong = sorted(CHALLENGES)[:2]
    path = _attempts(tmp_path, f"from {CHALLENGES[right].module} import {right}\n{wrong} = lambda *a, **k: None\n")
    assert main([str(path)]) == 1
    out = capsys.readouterr().out
    assert f"PASS {right}" in out
    assert f"FAIL {wrong}" in out


def test_the_command_line_lists_challenges(capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in CHALLENGES)


@pytest.mark.parametrize(
    ("text", "name", "message"),
    [
        (None, "missing.py", "no file of attempts"),
        ("x = 1\n", "notes.txt", "must be a .py file"),
        ("def helper():\n    pass\n", "attempts.py", "defines no function named after a challenge"),
        ("def broken(:\n", "attempts.py", "invalid syntax"),
    ],
)
def test_the_command_line_explains_bad_input(tmp_path, capsys, text, name, message):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    assert main([str(path)]) == 2
    assert message in capsys.readouterr().err
