#!/usr/bin/env bash
# Repoint the ros-* wheels' exported CMake files from their manylinux build container
# (/opt/python/cp311-cp311/...) to this venv's Python and NumPy include dirs. Idempotent.
set -euo pipefail
venv=${1:?usage: fix_wheel_cmake.sh VENV}
py=$venv/bin/python
pyinc=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
npinc=$("$py" -c 'import numpy; print(numpy.get_include())')
count=0
while IFS= read -r f; do
  sed -i -e "s#/opt/python/cp3[0-9]*-cp3[0-9]*/include/python3\.[0-9]*#$pyinc#g" \
         -e "s#/opt/python/cp3[0-9]*-cp3[0-9]*/lib/python3\.[0-9]*/site-packages/numpy/_core/include#$npinc#g" "$f"
  count=$((count + 1))
done < <(grep -rl '/opt/python/cp3' "$venv/share" --include='*.cmake' 2>/dev/null || true)
echo "fix_wheel_cmake: rewrote $count exported cmake file(s) in $venv/share"
