#!/usr/bin/env bash
# Run benchmarks.gpu_check on a GPU machine without the project's venv and without
# network access (one with Python 3.12, torch, nvidia-ml-py, pandas, scikit-learn, scipy,
# rich, typer and matplotlib installed, e.g. an H200 host).
#
# 1. On a machine with network access, once (three pure-Python wheels, about 1 MB):
#        bash benchmarks/gpu_check.sh prepare
#    It downloads codecarbon (its bundled data: CO2 intensity, CPU TDP table) and
#    torch-pruning (the structured variant) as wheels into .whl/ (ignored through
#    .git/info/exclude, never committed), and builds the project's own wheel there, whose
#    entry points register the probes. Their other requirements are on the GPU machine;
#    codecarbon's own (arrow, pydantic, ...) are not needed: only its data files are read.
# 2. Then, on the GPU machine, in a copy of the working tree that includes .whl/:
#        bash benchmarks/gpu_check.sh device
#    About 3 minutes of work on an H200; allow 420 s. With $OUT set, gpu_check.json,
#    cases.csv and measurements.csv are written to $OUT: copy gpu_check.json to
#    results/validation/gpu_check-<UTC time>.json and commit it.
#
# `bash benchmarks/gpu_check.sh device` also runs on any machine whose python3 has the
# project's requirements; without $OUT the JSON goes to results/validation/.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
prepare)
    grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
    mkdir -p .whl
    rm -f .whl/energy_harness-*.whl
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl codecarbon==3.3.2 torch-pruning==1.6.1
    builder=python3
    if [ -x .venv/bin/python ]; then builder=.venv/bin/python; fi
    src=$(mktemp -d)  # build from a copy: no build/ or egg-info left in the tree
    cp -r pyproject.toml README.md harness probes benchmarks "$src"
    "$builder" -m pip wheel -q --no-deps --no-build-isolation -w .whl "$src"
    rm -rf "$src"
    ls -l .whl
    ;;
device)
    site=${GPU_CHECK_SITE:-/tmp/site}
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" .whl/*.whl
    # the working tree first (python -m puts it first anyway); $site holds the carried
    # wheels and the project's entry points
    export PYTHONPATH="$PWD:$site" PYTHONUNBUFFERED=1
    nvidia-smi -L || true
    rm -rf /tmp/gpu-check-run  # run_suite wants a fresh run directory
    status=0
    if [ -n "${OUT:-}" ]; then
        python3 -m benchmarks.gpu_check --out "$OUT/gpu_check.json" \
            --run-dir /tmp/gpu-check-run --deadline-s 300 || status=$?
        for f in cases.csv measurements.csv; do
            if [ -f "/tmp/gpu-check-run/run/$f" ]; then cp "/tmp/gpu-check-run/run/$f" "$OUT/"; fi
        done
    else
        python3 -m benchmarks.gpu_check --run-dir /tmp/gpu-check-run --deadline-s 300 || status=$?
    fi
    exit "$status"
    ;;
*)
    echo "usage: bash benchmarks/gpu_check.sh prepare   (here: wheels into .whl/)" >&2
    echo "       bash benchmarks/gpu_check.sh device    (on the GPU machine, after prepare)" >&2
    exit 2
    ;;
esac
