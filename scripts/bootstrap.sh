#!/usr/bin/env bash
# Create or refresh .venv from requirements.txt, build laecips_msgs and install the Python
# packages (editable). Idempotent: each step is skipped when its inputs did not change.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv=$root/.venv
py=${PYTHON:-python3}
stamp_of() { cat "$@" | sha256sum | cut -c1-16; }
# pip warns about every package missing from this machine's local mirrors; that is noise here.
quiet_pip() { "$venv/bin/python" -m pip "$@" 2> >(grep -v "^WARNING: Location '" >&2); }

if [ ! -x "$venv/bin/python" ]; then
  echo "bootstrap: creating $venv"
  "$py" -m venv "$venv"
fi
req_stamp=$(stamp_of requirements.txt)
if [ "$(cat "$venv/.laecips-req" 2>/dev/null)" != "$req_stamp" ]; then
  echo "bootstrap: installing pinned requirements (first run: ~1-2 min)"
  quiet_pip install -q --disable-pip-version-check --upgrade pip
  quiet_pip install -q --disable-pip-version-check -r requirements.txt
  rm -f "$venv/.laecips-pkgs"
  echo "$req_stamp" > "$venv/.laecips-req"
fi

msgs_stamp=$(stamp_of requirements.txt src/laecips_msgs/CMakeLists.txt src/laecips_msgs/package.xml src/laecips_msgs/msg/*.msg)
if [ "$(cat install/laecips_msgs/.laecips-stamp 2>/dev/null)" != "$msgs_stamp" ]; then
  VENV=$venv bash scripts/build_msgs.sh
  echo "$msgs_stamp" > install/laecips_msgs/.laecips-stamp
fi

pkg_stamp=$(stamp_of requirements.txt src/laecips_{core,common,edge,cloud}/setup.{py,cfg})
if [ "$(cat "$venv/.laecips-pkgs" 2>/dev/null)" != "$pkg_stamp" ]; then
  echo "bootstrap: installing laecips_core, laecips_common, laecips_edge, laecips_cloud (editable)"
  mkdir -p build
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
    -e src/laecips_core -e src/laecips_common -e src/laecips_edge -e src/laecips_cloud \
    >build/pip-editable.log 2>&1 \
    || { cat build/pip-editable.log >&2; echo "bootstrap: installing our packages failed" >&2; exit 1; }
  echo "$pkg_stamp" > "$venv/.laecips-pkgs"
fi
