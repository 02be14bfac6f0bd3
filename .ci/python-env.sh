#!/usr/bin/env bash
# Creates (or reuses) the Python environment of the interoperability tests
# in .venv at the repository root: safetensors, numpy, tensorboard, onnx,
# onnxruntime and scikit-learn.
# Prints only the path of its python on stdout (everything else goes to
# stderr), so callers can do: export VNN_PYTHON=$(bash .ci/python-env.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$PWD/.venv"
py="$venv/bin/python"
packages=(safetensors numpy tensorboard onnx onnxruntime scikit-learn)
check='import safetensors.numpy, numpy, tensorboard.backend.event_processing.event_accumulator, tensorboard.plugins.hparams.plugin_data_pb2, onnx, onnxruntime, sklearn.metrics'

if [ -x "$py" ] && "$py" -c "$check" >/dev/null 2>&1; then
  echo "reusing $venv" >&2
  echo "$py"
  exit 0
fi

command -v python3 >/dev/null || { echo "python3 not found" >&2; exit 1; }
echo "creating $venv with $(python3 --version 2>&1)" >&2
python3 -m venv "$venv" >&2

n=0
until "$py" -m pip install --disable-pip-version-check --quiet "${packages[@]}" >&2; do
  n=$((n + 1))
  if [ "$n" -ge 3 ]; then
    echo "pip install failed $n times; giving up" >&2
    exit 1
  fi
  echo "pip install failed; retrying in $((n * 10)) s" >&2
  sleep $((n * 10))
done

"$py" -c "$check" >&2
"$py" -c 'import safetensors, numpy, tensorboard, onnx, onnxruntime, sklearn; print("safetensors", safetensors.__version__, "numpy", numpy.__version__, "tensorboard", tensorboard.__version__, "onnx", onnx.__version__, "onnxruntime", onnxruntime.__version__, "scikit-learn", sklearn.__version__)' >&2
echo "$py"
