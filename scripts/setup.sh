#!/usr/bin/env bash
# Fresh-machine set-up: Debian packages (what FFCV compiles against; Fashion-MNIST, the offline
# 28x28 data set), a virtual environment, and hiddenlab with every dependency. Idempotent: a
# second run with nothing changed takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

need_apt=()
for pkg in pkg-config libopencv-dev libturbojpeg0-dev dataset-fashion-mnist; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
stamp="$VENV/.hiddenlab-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
  # torch/torchvision: lower bounds only, so pip takes the registry's matching pair (an exact
  # torch pin would pick a local CPU-only wheel PyPI's torchvision cannot load its ops against).
  "$VENV/bin/python" -m pip install -q -e ".[test]"
  touch "$stamp"
fi
"$VENV/bin/python" -c "import torch, torchvision, ray, ffcv, pandas, seaborn, hiddenlab.models; \
print(f'setup: torch {torch.__version__}, torchvision {torchvision.__version__}, ray {ray.__version__}')"
