"""The lean edge as an operator runs it: a venv without torch (scripts/edge_venv.sh from
requirements-edge.txt), the edge_node console script with backend onnxruntime and a signed bundle that
carries ONNX graphs of f and h; real DDS on loopback, real Zenoh. Its labels and confidences are those
of torch's EdgePredictor on the same frames, and a signed update announced over Zenoh is swapped in."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from bundle_helpers import add_onnx_graphs
from edge_harness import (
    NUM_CLASSES,
    RosPeer,
    _write_params,
    edge_params,
    frame_rgb,
    image_msg,
    make_bundle,
    mono8,
    wait_for,
)
from laecips_core.algo.mining import NeuralMiner
from laecips_core.algo.predictor import EdgePredictor
from laecips_core.services.edge_service import class_summary
from laecips_core.storage import bundle_loading, signing
from launch_helpers import REPO_ROOT, ProcessGroup, random_domain_id, ros_env

from laecips_core import files, transport

pytestmark = pytest.mark.slow

EDGE_VENV = REPO_ROOT / "build" / "edge-venv"
BASE_STAMP = 1_800_000_000 * 1_000_000_000


@pytest.fixture(scope="module")
def edge_venv() -> Path:
    """build/edge-venv from requirements-edge.txt (about 25 s the first time, a stamp check after)."""
    out = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "edge_venv.sh")], capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    probe = subprocess.run([str(EDGE_VENV / "bin" / "python"), "-c", "import torch"], capture_output=True)
    assert probe.returncode != 0, "torch is importable in the edge venv"
    return EDGE_VENV


def test_edge_node_runs_a_signed_onnx_bundle_without_torch(tmp_path: Path, router, edge_venv: Path):
    endpoint, session = router
    private, public = signing.generate_keypair(tmp_path / "keys")
    bundle = add_onnx_graphs(make_bundle(tmp_path / "v3.safetensors", 3, None, seed=11))
    signing.write_signature(bundle, signing.sign_digest(private, files.sha256_file(bundle)))
    params = edge_params(
        tmp_path,
        endpoint,
        bundle,
        backend="onnxruntime",
        trusted_public_key=str(public),
        allow_unsigned_weights=False,
        threshold=0.0,
    )
    params_file = _write_params(tmp_path / "edge.yaml", params)
    env_script = REPO_ROOT / "scripts" / "edge_env.sh"
    command = f"source {env_script} && exec edge_node --ros-args --params-file {params_file}"
    domain = random_domain_id()
    # torch's predictor over the same bundle, in this process: what the lean edge must reproduce
    loaded = bundle_loading.load_bundle(bundle)
    from laecips_core.algo.bundles import build_models

    f, h = build_models(loaded)
    reference = EdgePredictor(f, NeuralMiner(h), stream_norm_prior=16.0)
    with ProcessGroup(tmp_path / "logs", timeout_s=240) as group:
        edge = group.start("lean_edge", ["bash", "-c", command], env=ros_env(domain))
        peer = RosPeer(domain)
        try:
            pub = peer.publisher("/cam")
            peer.subscribe_edge()
            connected = wait_for(lambda: pub.get_subscription_count() > 0 and peer.edge_connected(), 90)
            assert connected, edge.log()
            maps = Path(f"/proc/{edge.popen.pid}/maps").read_text()
            assert str(edge_venv) in maps and "onnxruntime" in maps
            assert "libtorch" not in maps and "/.venv/" not in maps  # nothing of the torch venv loaded
            for i in range(3):
                stamp = BASE_STAMP + i * 10_000_000
                pub.publish(image_msg(frame_rgb(i), stamp))
                assert wait_for(lambda s=stamp: peer.results_for(s), 60), edge.log()[-3000:]
                (result,) = peer.results_for(stamp)
                expected = reference.predict(frame_rgb(i))
                assert result.source == "edge" and result.model_version == 3
                assert result.num_classes == NUM_CLASSES
                labels = mono8(result.labels)
                assert labels.shape == (120, 160) and len(np.unique(labels)) > 1  # a real, varied f
                assert (labels == expected.labels).mean() >= 0.999
                assert result.confidence == pytest.approx(expected.confidence, abs=1e-4)
                fractions, scores = class_summary(
                    expected.labels, expected.label_probs(expected.labels), NUM_CLASSES
                )
                np.testing.assert_allclose(result.class_fractions, fractions, atol=2e-3)
                np.testing.assert_allclose(result.class_scores, scores, atol=1e-3)
                assert max(result.class_scores) > 0.0
            # Algorithm 2's update without torch: a signed v4 announced over Zenoh is fetched into the
            # store, verified (its header only, no tensors decoded) and swapped in as ONNX graphs.
            update = add_onnx_graphs(make_bundle(tmp_path / "v4.safetensors", 4, 7))
            data = update.read_bytes()
            announcement = transport.ModelAnnouncement(
                version=4, sha256=files.sha256_bytes(data), uri="", signer="test", signature="",
                model_name="tiny_fcn", num_classes=NUM_CLASSES, stamp=time.time(),
            )  # fmt: skip
            signed = transport.sign_announcement(announcement, "r1", private)
            publication = transport.publish_model(session, "r1", 4, data, signed)
            try:
                stamp = BASE_STAMP + 10 * 10_000_000
                for i in range(10, 70):  # frames until one comes from v4 (bounded)
                    stamp = BASE_STAMP + i * 10_000_000
                    pub.publish(image_msg(frame_rgb(i), stamp))
                    assert wait_for(lambda s=stamp: peer.results_for(s), 60), edge.log()[-3000:]
                    if peer.results_for(stamp)[0].model_version == 4:
                        break
                (result,) = peer.results_for(stamp)
                assert result.model_version == 4, edge.log()[-3000:]
                assert (mono8(result.labels) == 7).all()  # v4's f labels every pixel 7
            finally:
                publication.close()
            assert edge.alive() and "onnxruntime" in edge.log()
        finally:
            peer.close()
