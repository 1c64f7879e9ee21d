# Source me (bash): scripts/env.sh (loopback-only ROS 2, own ROS_DOMAIN_ID, Fast DDS profile,
# install/laecips_msgs on the paths), then the torch-free edge venv instead of .venv: VIRTUAL_ENV,
# PATH and AMENT_PREFIX_PATH point at $LAECIPS_EDGE_VENV (default build/edge-venv, made by
# `bash scripts/edge_venv.sh`), so `python` and `edge_node` run with no torch and no library of .venv.
_laecips_edge_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/env.sh
source "$_laecips_edge_root/scripts/env.sh"
_laecips_main_venv=$_laecips_edge_root/.venv
_laecips_edge_venv=${LAECIPS_EDGE_VENV:-$_laecips_edge_root/build/edge-venv}
if [ ! -x "$_laecips_edge_venv/bin/python" ]; then
  echo "edge_env: no venv at $_laecips_edge_venv; run 'bash scripts/edge_venv.sh' first" >&2
fi
export VIRTUAL_ENV=$_laecips_edge_venv
# env.sh put .venv first on both paths: drop it, put the edge venv in its place.
PATH=":$PATH:"
while [[ $PATH == *":$_laecips_main_venv/bin:"* ]]; do PATH=${PATH/":$_laecips_main_venv/bin:"/:}; done
PATH=${PATH#:}
export PATH=$_laecips_edge_venv/bin:${PATH%:}
AMENT_PREFIX_PATH=":$AMENT_PREFIX_PATH:"
while [[ $AMENT_PREFIX_PATH == *":$_laecips_main_venv:"* ]]; do
  AMENT_PREFIX_PATH=${AMENT_PREFIX_PATH/":$_laecips_main_venv:"/:$_laecips_edge_venv:}
done
AMENT_PREFIX_PATH=${AMENT_PREFIX_PATH#:}
export AMENT_PREFIX_PATH=${AMENT_PREFIX_PATH%:}
# A parent that imported rclpy from .venv put .venv's ROS library folders on LD_LIBRARY_PATH: drop them
# (the edge venv's own ROS wheels add theirs on start-up, ros_wheels_bootstrapper.pth)...
_laecips_ld=""
IFS=: read -r -a _laecips_dirs <<< "${LD_LIBRARY_PATH:-}"
for _laecips_dir in "${_laecips_dirs[@]}"; do
  case $_laecips_dir in "$_laecips_main_venv"/*|"") ;; *) _laecips_ld=${_laecips_ld:+$_laecips_ld:}$_laecips_dir ;; esac
done
export LD_LIBRARY_PATH=$_laecips_ld
# ...and the guard of the ROS wheels' start-up hook that set them: the edge venv's hook adds its own.
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE
unset TORCH_HOME _laecips_ld _laecips_dirs _laecips_dir
unset _laecips_edge_root _laecips_main_venv _laecips_edge_venv
