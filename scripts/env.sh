# Source me (bash): the one environment for every target, test and demo of this workspace.
# Loopback-only ROS 2, a ROS_DOMAIN_ID of its own per run, the Fast DDS profile for large
# frames, and the built laecips_msgs on the import and library paths.
_laecips_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export LAECIPS_ROOT=$_laecips_root
export VIRTUAL_ENV=$_laecips_root/.venv
export PATH=$VIRTUAL_ENV/bin:$PATH
# Network rule: DDS discovery stays on this host.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
unset ROS_STATIC_PEERS
# A domain of its own for each run (1..100) so parallel runs never cross; keep one given by the caller.
if [ -z "${ROS_DOMAIN_ID:-}" ]; then
  export ROS_DOMAIN_ID=$(( 1 + ( $$ + $(date +%N | sed 's/^0*//;s/^$/0/') ) % 100 ))
fi
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
export FASTDDS_DEFAULT_PROFILES_FILE=$_laecips_root/src/laecips_bringup/config/fastdds_large_frames.xml
export RMW_FASTRTPS_USE_QOS_FROM_XML=0
_laecips_msgs=$_laecips_root/install/laecips_msgs
export AMENT_PREFIX_PATH=$_laecips_msgs:$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
export PYTHONPATH=$_laecips_msgs/lib/python3.11/site-packages${PYTHONPATH:+:$PYTHONPATH}
export LD_LIBRARY_PATH=$_laecips_msgs/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# Never reach a model hub; everything is local.
export HF_HUB_OFFLINE=1
export TORCH_HOME=$_laecips_root/.venv/torch-home
export MPLBACKEND=Agg
# Zenoh: no multicast anywhere (configs also say so); logs at warn so rejections show.
export RUST_LOG=${RUST_LOG:-warn}
unset _laecips_root _laecips_msgs
