#!/usr/bin/env bash
# Create benchmarks/.venv-peers: a separate environment holding the peer MDN libraries that
# benchmarks/peers.py times. They are benchmark-only tools, never dependencies of mdn, and
# their pins clash with ours (scikit-mdn wants numpy<2), hence an environment of their own.
#
# Idempotent: re-running reuses the venv and pip skips what is already installed.
# Usage (from the repository root):  bash benchmarks/peers-venv.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-peers"
python="${PYTHON:-python3.11}"  # keras-mdn-layer 1.0.0 needs Python >= 3.11

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --disable-pip-version-check)

# Pin torch to the local CPU build. scikit-mdn and mixture-density-nets ask for plain
# "torch"; left unpinned, pip would pull a CUDA build and gigabytes of nvidia-* wheels.
constraints="$venv/constraints-peers.txt"
cat > "$constraints" <<'PINS'
torch==2.13.0
scikit-mdn==0.0.3
mixture-density-nets==0.1.1
keras-mdn-layer==1.0.0
tensorflow-cpu==2.21.0
PINS

"${pip[@]}" -c "$constraints" torch==2.13.0
# TensorFlow is the Keras 3 backend that keras-mdn-layer is tested with (its README);
# tensorflow-cpu avoids the CUDA extras. keras itself comes in through tensorflow.
"${pip[@]}" -c "$constraints" scikit-mdn mixture-density-nets keras-mdn-layer tensorflow-cpu

# Record what installed, for the benchmark's report.
"$venv/bin/python" - <<'PY' | tee "$venv/versions.txt"
from importlib.metadata import version
import sys
print(f"python=={sys.version.split()[0]}")
for name in ("torch", "numpy", "scikit-learn", "scikit-mdn", "mixture-density-nets",
             "keras", "keras-mdn-layer", "tensorflow-cpu"):
    print(f"{name}=={version(name)}")
PY
