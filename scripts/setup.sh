# Shared set-up for ./scripts/serve and ./scripts/test (sourced, not run).
# Creates .venv if it is missing and installs PyTorch and the course with its extras. A second run
# finds the stamp left by the first and installs nothing.

TORCH_VERSION=${TORCH_VERSION:-2.13.0}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$root/.venv
python=$venv/bin/python

if [[ ! -x $python ]]; then
  base=${PYTHON:-python3}
  command -v "$base" >/dev/null || { echo "setup: $base not found; install Python 3.10 or newer" >&2; exit 1; }
  "$base" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "setup: $("$base" --version) is too old; the course needs Python 3.10 or newer" >&2; exit 1; }
  echo "setup: creating $venv"
  "$base" -m venv "$venv"
fi

# The stamp records what was installed: the project's requirements and the torch pin.
stamp=$venv/.torchenstein-installed
wanted="$(cat "$root/pyproject.toml" | sha256sum | cut -d' ' -f1) torch==$TORCH_VERSION"
if [[ ! -f $stamp || $(cat "$stamp") != "$wanted" ]]; then
  # torch first, pinned, with pip: it is the CPU build this machine keeps on disk, where only pip looks.
  # A torch already in .venv (a CUDA build you installed, say) is kept. The project asks only for a
  # range, which either satisfies, so installing the project afterwards fetches no other torch.
  if ! "$python" -c "import torch" 2>/dev/null; then
    echo "setup: installing torch==$TORCH_VERSION"
    "$python" -m pip install --quiet --disable-pip-version-check --no-compile "torch==$TORCH_VERSION"
  fi
  # While the rest installs, PyTorch's modules and the course's are compiled to bytecode once, here (see
  # below), instead of by every test process at once when the suite starts.
  { PYTHONDONTWRITEBYTECODE= "$python" -c "import torch"
    "$python" -m compileall -q -j 0 "$root/torchenstein"; } >/dev/null 2>&1 &
  compiling=$!
  # uv installs the ~100 other packages in seconds, where pip takes over a minute; pip does it where
  # uv cannot be had.
  echo "setup: installing torchenstein with its docs, labs and test extras"
  if ! { "$python" -m pip install --quiet --disable-pip-version-check --no-compile uv \
         && "$venv/bin/uv" pip install --quiet --python "$python" -e "$root[docs,labs,test]"; }; then
    echo "setup: uv could not install the extras; trying pip" >&2
    "$python" -m pip install --quiet --disable-pip-version-check -e "$root[docs,labs,test]"
  fi
  wait "$compiling" || true
  # And the libraries every test process imports as it starts, in the background: the first run of the
  # suite, or of the site, goes on meanwhile, and finds them compiled by the time it needs them.
  PYTHONDONTWRITEBYTECODE= "$python" -c "import matplotlib.pyplot, hypothesis, mkdocs.commands.build, \
griffe, mkdocstrings, material, markdown, pygments.lexers.python, playwright.sync_api" >/dev/null 2>&1 &
  echo "$wanted" > "$stamp"
fi

# Packages are installed without bytecode (uv's default, and pip's --no-compile above): Python
# compiles a module the first time it is imported and keeps the result, so only what the course
# imports is ever compiled. That needs bytecode writing on, whatever the shell says.
unset PYTHONDONTWRITEBYTECODE
export NO_MKDOCS_2_WARNING=1
export MPLBACKEND=Agg
cd "$root"
