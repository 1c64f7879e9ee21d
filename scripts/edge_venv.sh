#!/usr/bin/env bash
# Create or refresh the torch-free edge venv (issue 13, "a lean edge"): requirements-edge.txt (the
# same pins as requirements.txt, without torch and the other cloud/trainer/test packages), then
# laecips_core, laecips_common and laecips_edge editable, no dependencies. Ends by checking that
# `import torch` fails in it. Idempotent: a second run with nothing changed only checks its stamp.
#
# Usage: bash scripts/edge_venv.sh [DIR]        (DIR defaults to build/edge-venv)
#
# Run an edge node in it (laecips_msgs comes from install/, built by `bash scripts/bootstrap.sh`):
#   bash scripts/bootstrap.sh && bash scripts/edge_venv.sh
#   source scripts/edge_env.sh          # scripts/env.sh, then VIRTUAL_ENV/PATH/AMENT_PREFIX_PATH -> edge venv
#   edge_node --ros-args -p backend:=onnxruntime -p edge_model.path:=BUNDLE ...  (a bundle with ONNX graphs)
# (`source scripts/edge_env.sh` takes the venv from $LAECIPS_EDGE_VENV when DIR is not the default.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$(realpath -m "${1:-$root/build/edge-venv}")
cd "$root"
py=${PYTHON:-python3}
stamp_of() { cat "$@" | sha256sum | cut -c1-16; }
# pip warns about every package missing from this machine's local mirrors; that is noise here.
quiet_pip() { "$venv/bin/python" -m pip "$@" 2> >(grep -v "^WARNING: Location '" >&2); }
pkgs=(src/laecips_core src/laecips_common src/laecips_edge)

req_stamp=$(stamp_of requirements-edge.txt)
pkg_stamp=$(stamp_of requirements-edge.txt src/laecips_{core,common,edge}/setup.{py,cfg})
if [ "$(cat "$venv/.laecips-edge-req" 2>/dev/null)" != "$req_stamp" ]; then
  if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ] && [ -n "$(ls -A "$venv")" ]; then
    echo "edge_venv: $venv exists and is not a venv; give another DIR or remove it" >&2
    exit 1
  fi
  # A fresh venv (not an upgrade in place): nothing from an older requirements-edge.txt stays behind.
  echo "edge_venv: creating $venv with $("$py" -V 2>&1)"
  "$py" -m venv --clear "$venv"
  echo "edge_venv: installing requirements-edge.txt (first run: ~25 s here)"
  # setuptools >= 70.1 builds editable wheels itself (the venv's bundled 65.5 needs `wheel`); it is
  # unpinned here as in requirements.txt, where torch pulls it in.
  quiet_pip install -q --disable-pip-version-check --upgrade pip "setuptools>=70.1"
  quiet_pip install -q --disable-pip-version-check -r requirements-edge.txt
  rm -f "$venv/.laecips-edge-pkgs"
  echo "$req_stamp" > "$venv/.laecips-edge-req"
fi

if [ "$(cat "$venv/.laecips-edge-pkgs" 2>/dev/null)" != "$pkg_stamp" ]; then
  echo "edge_venv: installing laecips_core, laecips_common, laecips_edge (editable, no dependencies)"
  log=$venv/pip-editable.log
  editable=()
  for pkg in "${pkgs[@]}"; do editable+=(-e "$pkg"); done
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
    "${editable[@]}" >"$log" 2>&1 \
    || { cat "$log" >&2; echo "edge_venv: installing our packages failed" >&2; exit 1; }
  echo "$pkg_stamp" > "$venv/.laecips-edge-pkgs"
fi

# The point of this venv: no torch. -s and no PYTHONPATH: only what the venv itself holds.
if env -u PYTHONPATH "$venv/bin/python" -s -c "import torch" >/dev/null 2>&1; then
  echo "edge_venv: torch is importable in $venv, so it is not a lean edge: remove $venv and run" \
    "this script again (and check that requirements-edge.txt pulls in no torch)" >&2
  exit 1
fi
if [ ! -d install/laecips_msgs ]; then
  echo "edge_venv: note: install/laecips_msgs is missing; run 'bash scripts/bootstrap.sh' once to build it"
fi
echo "edge_venv: ready ($venv, no torch); use it with 'source scripts/edge_env.sh'"
