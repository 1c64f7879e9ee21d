"""What lives on disk: safetensors bundles of f and h (weights, signing, bundle_loading, weight_store),
the replay buffer of Algorithm 2 (replay), rosbag2 files (bags) and training-job specs (jobspec)."""
