"""The labs: each one in the course order, its notebook executed from the script as it is, and every
lab run again here at smoke size, so a lab can neither drift from its code nor stop working."""

from __future__ import annotations

import json

import pytest

from torchenstein.course import labs
from torchenstein.labbook import (
    RECORD_KEY,
    execute,
    find_lab,
    is_current,
    notebook_path,
    recorded_hash,
    repo_root,
    source_hash,
)

LABS = labs()


def test_the_course_has_labs_and_each_script_exists():
    assert LABS, "the course order lists no lab"
    for lab in LABS:
        assert (repo_root() / lab.script).is_file(), f"{lab.name}: no script at {lab.script}"


def test_every_lab_script_is_listed_in_the_course_order():
    scripts = {p.relative_to(repo_root()).as_posix() for p in (repo_root() / "labs").rglob("*.py")}
    assert scripts == {lab.script for lab in LABS}


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.name)
def test_each_committed_notebook_was_executed_from_the_script_as_it_is(lab):
    path = notebook_path(lab)
    assert path.is_file(), f"{lab.name} has never been executed: run `torchenstein lab {lab.name}`"
    assert recorded_hash(path) == source_hash(lab), (
        f"{lab.page} was executed from another version of {lab.script}: run `torchenstein lab {lab.name}`"
    )
    record = json.loads(path.read_text(encoding="utf-8"))["metadata"][RECORD_KEY]
    assert record["smoke"] is False, f"{lab.page} holds a smoke run; the page must show the full-size run"
    assert is_current(lab)


def _outputs(notebook: dict) -> list[dict]:
    return [output for cell in notebook["cells"] if cell["cell_type"] == "code" for output in cell["outputs"]]


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.name)
def test_each_committed_notebook_shows_its_figures_and_no_error(lab):
    outputs = _outputs(json.loads(notebook_path(lab).read_text(encoding="utf-8")))
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{lab.name} shows no figure"


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.name)
def test_each_lab_runs_at_smoke_size(lab, tmp_path, monkeypatch):
    # The suite runs one test process per core: a kernel with a thread per core too would fight them.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    path = execute(lab, smoke=True, output=tmp_path / f"{lab.name}.ipynb", timeout=300)
    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert notebook["metadata"][RECORD_KEY]["smoke"] is True
    outputs = _outputs(notebook)
    assert any("image/png" in o.get("data", {}) for o in outputs)
    # A progress bar is collapsed to what a reader would see: its last drawing, no carriage returns.
    assert not any("\r" in "".join(o.get("text", "")) for o in outputs)


def test_a_smoke_run_never_overwrites_the_page():
    with pytest.raises(ValueError, match="must name its output"):
        execute(LABS[0], smoke=True)


def test_an_unknown_lab_is_named_with_a_suggestion():
    with pytest.raises(LookupError, match="did you mean"):
        find_lab(LABS[0].name[:-1])
    with pytest.raises(LookupError, match="the labs are"):
        find_lab("zzzz")
