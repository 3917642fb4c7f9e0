"""The lab book: every lab of the course executed, recorded, and checked against its source.

A lab is a longer experiment than a doctest can hold (a training run, a sweep, a sampler with
pictures). Its source is a percent-format script, ``labs/<part>/<name>.py``, whose ``# %%`` cells are
code and whose ``# %% [markdown]`` cells are the Professor's commentary. Executing a lab turns that
script into a notebook, runs it in a fresh Jupyter kernel and writes it, outputs included, to
``docs/labs/<part>/<name>.ipynb``, where the site shows it as a page. The notebook records the SHA-256
of the script it was executed from, so the tests notice a lab whose code changed after its last run.

    torchenstein lab deep_nets_lab            # the full run, rewriting the page's notebook
    torchenstein lab deep_nets_lab --smoke    # a quick run (TORCHENSTEIN_SMOKE=1), written elsewhere

```pycon
>>> from torchenstein.labbook import find_lab
>>> find_lab("deep_nets_lab").page
'labs/nn/deep_nets_lab.ipynb'
>>> find_lab("deep_nets")
Traceback (most recent call last):
...
LookupError: no lab is named 'deep_nets'; did you mean 'deep_nets_lab'?

```
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

from torchenstein.course import Lab, labs, module_path
from torchenstein.lab import SMOKE_VARIABLE

RECORD_KEY = "torchenstein"
"""The key of the notebook metadata in which an executed lab records where it came from."""


def repo_root() -> Path:
    """The repository the course is installed from (labs live beside the package, not inside it).

    Raises:
        FileNotFoundError: if the package was installed without its repository (no ``labs/`` folder).
    """
    root = module_path("torchenstein").parent.parent
    if not (root / "labs").is_dir():
        raise FileNotFoundError(
            f"no labs/ folder beside the package at {root}; labs run from a clone of the course repository"
        )
    return root


def find_lab(name: str) -> Lab:
    """The lab called ``name`` (the script's name without ``.py``).

    Raises:
        LookupError: if no lab has that name; the message suggests the closest names.
    """
    names = {lab.name: lab for lab in labs()}
    if name in names:
        return names[name]
    close = [n for n in names if n.startswith(name)] or difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else f"; the labs are {sorted(names)}"
    raise LookupError(f"no lab is named {name!r}{hint}")


def source_hash(lab: Lab) -> str:
    """The SHA-256 of the lab's script, as its executed notebook must record it."""
    return hashlib.sha256((repo_root() / lab.script).read_bytes()).hexdigest()


def recorded_hash(notebook: Path) -> str | None:
    """The SHA-256 of the script an executed notebook says it was run from (``None`` if it says nothing)."""
    record = json.loads(notebook.read_text(encoding="utf-8")).get("metadata", {}).get(RECORD_KEY, {})
    return record.get("source_sha256")


def notebook_path(lab: Lab) -> Path:
    """Where the site expects the lab's executed notebook: ``docs/labs/<part>/<name>.ipynb``."""
    return repo_root() / "docs" / lab.page


def is_current(lab: Lab) -> bool:
    """Whether the lab's committed notebook was executed from the script as it is now."""
    path = notebook_path(lab)
    return path.is_file() and recorded_hash(path) == source_hash(lab)


# A progress bar redraws its line with carriage returns. Jupyter shows only the last drawing; the
# notebook file keeps every one unless they are collapsed, so collapse them the way Jupyter shows them.
_REDRAWN = re.compile(r"[^\n]*\r(?!\n)")


def tidy_outputs(notebook: dict) -> dict:
    r"""Merge each cell's consecutive stream outputs and keep only what a reader would see of them.

    Examples:
        >>> cell = {"cell_type": "code", "outputs": [
        ...     {"output_type": "stream", "name": "stderr", "text": " 10%|#\r"},
        ...     {"output_type": "stream", "name": "stderr", "text": "100%|##########|\n"}]}
        >>> tidy_outputs({"cells": [cell]})["cells"][0]["outputs"]
        [{'output_type': 'stream', 'name': 'stderr', 'text': '100%|##########|\n'}]
    """
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        merged: list[dict] = []
        for output in cell.get("outputs", []):
            previous = merged[-1] if merged else None
            if (
                output["output_type"] == "stream"
                and previous is not None
                and previous["output_type"] == "stream"
                and previous["name"] == output["name"]
            ):
                previous["text"] += output["text"]
            else:
                merged.append(dict(output))
        for output in merged:
            if output["output_type"] == "stream":
                output["text"] = _REDRAWN.sub("", output["text"])
        cell["outputs"] = merged
        # Timestamps would change the file on every run without changing what it says.
        cell.get("metadata", {}).pop("execution", None)
    return notebook


@contextmanager
def _environment(**variables: str):
    """Set environment variables for the kernel this process is about to start, then restore them."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def execute(lab: Lab, *, smoke: bool = False, output: Path | None = None, timeout: int = 3600) -> Path:
    """Execute a lab in a fresh kernel and write the notebook with its outputs.

    Args:
        lab: the lab to run.
        smoke: run at smoke size (``TORCHENSTEIN_SMOKE=1``): every line, in seconds.
        output: where to write the notebook; by default the page's own notebook for a full run. A smoke
            run must name its output, so it never overwrites the page.
        timeout: the longest one cell may run, in seconds.

    Returns:
        The path of the written notebook.

    Raises:
        ValueError: if a smoke run names no output.
        nbclient.exceptions.CellExecutionError: if a cell raises; the message shows the cell and error.
    """
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    if smoke and output is None:
        raise ValueError("a smoke run must name its output, so the lab's page keeps its full-size run")
    root = repo_root()
    script = root / lab.script
    notebook = jupytext.read(script)
    notebook.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    variables = {SMOKE_VARIABLE: "1" if smoke else "0"}
    started = time.perf_counter()
    with _environment(**variables):
        client = NotebookClient(
            notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(root)}}
        )
        client.execute()
    notebook.metadata[RECORD_KEY] = {
        "source": lab.script,
        "source_sha256": source_hash(lab),
        "smoke": smoke,
        "seconds": round(time.perf_counter() - started, 1),
    }
    notebook = nbformat.from_dict(tidy_outputs(notebook))
    target = output if output is not None else notebook_path(lab)
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, target)
    return target
