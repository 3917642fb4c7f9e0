"""The torchenstein command: each subcommand does what its help says, and bad names get clear answers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from torchenstein.cli import course_listing, doctor_report, main, resolve_lesson
from torchenstein.course import COURSE, labs, lessons


def test_list_shows_every_lesson_and_lab(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for lesson in lessons():
        assert lesson.title in out
    for lab in labs():
        assert lab.name in out
    assert out.count("Part ") == len(COURSE)
    assert out.strip() == course_listing()


def test_a_lesson_is_found_by_short_or_full_name():
    lesson = lessons()[0]
    assert resolve_lesson(lesson.name) == resolve_lesson(lesson.module) == lesson


@pytest.mark.parametrize("command", [["run", "rmsnrom"], ["run", "torchenstein.nn.rmsnrom"]])
def test_an_unknown_lesson_gets_the_closest_names(command, capsys):
    assert main(command) == 2
    assert "did you mean 'rmsnorm'?" in capsys.readouterr().err


def test_a_name_like_nothing_points_to_the_list(capsys):
    assert main(["run", "zzzzzz"]) == 2
    assert "`torchenstein list`" in capsys.readouterr().err


def test_run_runs_the_lessons_doctests_and_proofs_verbosely(monkeypatch, capsys):
    """The command runs pytest on the lesson's module and its proofs; arguments after the name go to pytest."""
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda command, cwd: calls.append(command) or 0)
    assert main(["run", "rmsnorm", "-k", "offset_weight"]) == 0
    (command,) = calls
    assert command[:4] == [sys.executable, "-m", "pytest", "-v"]
    assert command[-4].endswith("torchenstein/nn/rmsnorm.py") and command[-3].endswith("tests/test_rmsnorm.py")
    assert command[-2:] == ["-k", "offset_weight"]
    assert "$ " in capsys.readouterr().out


def test_an_unknown_lab_is_refused_with_the_list(capsys):
    assert main(["lab", "zzzz"]) == 2
    assert "the labs are" in capsys.readouterr().err


def test_check_with_no_file_lists_the_challenges(capsys):
    assert main(["check"]) == 0
    assert "torchenstein." in capsys.readouterr().out


def test_check_reports_a_missing_file(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nowhere.py")]) == 2
    assert "no file of attempts" in capsys.readouterr().err


def test_figures_writes_a_lessons_figures(tmp_path, capsys):
    assert main(["figures", "torchenstein.nn.rmsnorm", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "nn" / "rmsnorm" / "plot_rmsnorm_vs_layernorm.svg").is_file()


def test_doctor_names_torch_the_device_and_every_extra(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines() == doctor_report()
    for needle in ("torch ", "the course will use: ", "extra [docs]", "extra [labs]", "extra [test]"):
        assert needle in out


def test_the_console_script_is_installed_and_answers_help():
    result = subprocess.run(
        [sys.executable, "-m", "torchenstein.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    for command in ("list", "run", "check", "lab", "figures", "doctor"):
        assert command in result.stdout


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2
