#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): selection step time against dense and packed-trial
# throughput, at most ~8 minutes on one H100/H200. Needs only python3 with PyTorch and
# torchvision: this checkout's hiddenlab is put on PYTHONPATH through a folder of links that
# mirrors the installed layout (pyproject's package-dir: src/hiddenlab -> hiddenlab, study/ ->
# hiddenlab.study, ...), so nothing is installed and nothing else of this machine is used.
#
#   bash benchmarks/gpu_check.sh --json gpu_check.json --results-md benchmarks/RESULTS.md
#   bash benchmarks/gpu_check.sh --quick          # tiny CPU run of the same code
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
shim="$(mktemp -d "${TMPDIR:-/tmp}/hiddenlab-shim.XXXXXX")"
trap 'rm -rf "$shim"' EXIT
mkdir "$shim/hiddenlab"
ln -s "$repo"/src/hiddenlab/*.py "$shim/hiddenlab/"
for part in study models data analysis; do
    ln -s "$repo/$part" "$shim/hiddenlab/$part"
done
export PYTHONPATH="$shim${PYTHONPATH:+:$PYTHONPATH}"
"$python" -c "import hiddenlab, sys; assert hiddenlab.__file__.startswith('$shim'), hiddenlab.__file__" \
    || { echo "gpu_check: cannot import this checkout's hiddenlab" >&2; exit 1; }
"$python" "$repo/benchmarks/gpu_check.py" "$@"
