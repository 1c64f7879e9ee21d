#!/usr/bin/env bash
# Build the rosidl interface package src/laecips_msgs with plain CMake against the venv's
# ros-* wheels, into install/laecips_msgs. Always from a clean build directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$root/.venv}
src=$root/src/laecips_msgs
build=${BUILD_DIR:-$root/build/laecips_msgs}
prefix=${INSTALL_PREFIX:-$root/install/laecips_msgs}
rm -rf "$build"; mkdir -p "$(dirname "$build")"
bash "$root/scripts/fix_wheel_cmake.sh" "$venv"
export AMENT_PREFIX_PATH=$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
export PATH=$venv/bin:$PATH
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
  -DCMAKE_PREFIX_PATH="$venv" -DCMAKE_INSTALL_PREFIX="$prefix" \
  -DPython3_EXECUTABLE="$venv/bin/python" >"$build.cmake.log" 2>&1 \
  || { mkdir -p "$(dirname "$build")"; cat "$build.cmake.log" >&2; echo "build_msgs: cmake configure failed (log above)" >&2; exit 1; }
cmake --build "$build" -j"$(nproc)" >>"$build.cmake.log" 2>&1 \
  || { tail -50 "$build.cmake.log" >&2; echo "build_msgs: build failed" >&2; exit 1; }
cmake --install "$build" >>"$build.cmake.log" 2>&1
echo "build_msgs: laecips_msgs installed in $prefix"
