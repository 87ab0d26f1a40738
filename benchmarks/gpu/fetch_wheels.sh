#!/usr/bin/env bash
# Put the pure-python wheels the GPU machine lacks (Hydra) into .whl/ (ignored by git; carried with the device calls).
# The GPU image has torch, lightning, torchmetrics, tensorboard, matplotlib, rich, PyYAML and packaging, not Hydra.
# antlr4-python3-runtime 4.9.3 exists only as an sdist on PyPI: it is built into a py3-none-any wheel here.
#   bash benchmarks/gpu/fetch_wheels.sh            # needs PyPI (this machine), not the GPU machine
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
HYDRA=1.3.8 OMEGACONF=2.3.1 ANTLR=4.9.3   # the versions of .venv (pyproject: hydra-core>=1.3,<1.4, omegaconf>=2.3,<2.4)
rm -rf .whl && mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl "hydra-core==$HYDRA" "omegaconf==$OMEGACONF"
tmp="$(mktemp -d)"
"$PY" -m pip download -q --no-deps --no-binary=:all: -d "$tmp" "antlr4-python3-runtime==$ANTLR"
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w .whl "$tmp"/antlr4*python3*runtime-"$ANTLR".tar.gz
rm -rf "$tmp"
ls -la .whl
for w in .whl/*.whl; do
  echo "$w requires: $(unzip -p "$w" '*/METADATA' | grep '^Requires-Dist' | grep -v 'extra ==' | sed 's/Requires-Dist: //' | tr '\n' ';')"
done
