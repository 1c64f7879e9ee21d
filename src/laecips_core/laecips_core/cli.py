"""The ``laecips`` command: eval, record-bag, pretrain, keygen, sign and plugin subcommands (no ROS)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from laecips_core import files
from laecips_core.errors import ConfigError, LaecipsError

#: Entry-point group through which other packages add subcommands (e.g. laecips_edge's play-bag).
PLUGIN_GROUP = "laecips.commands"
EXIT_USAGE = 2


class CommandError(LaecipsError):
    """A subcommand cannot run as asked (the message says what to change)."""


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not >= 1")
    return value


def _fraction(text: str) -> float:
    """argparse type: a float in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1]")
    return value


def _positive_float(text: str) -> float:
    """argparse type: a float > 0."""
    value = float(text)
    if not value > 0.0:
        raise argparse.ArgumentTypeError(f"{text} is not > 0")
    return value


def _non_negative_float(text: str) -> float:
    """argparse type: a float >= 0."""
    value = float(text)
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"{text} is not >= 0")
    return value


def _add_benchmark_args(parser: argparse.ArgumentParser, *, frames_default: int | None) -> None:
    """Options of the built-in drifting benchmark stream (benchmark BenchmarkConfig)."""
    group = parser.add_argument_group("built-in benchmark stream")
    group.add_argument("--seed", type=int, default=0, help="benchmark seed (default 0)")
    group.add_argument(
        "--frames-per-task",
        type=_positive_int,
        default=frames_default,
        help="frames per task" + (f" (default {frames_default})" if frames_default else ""),
    )
    group.add_argument("--width", type=_positive_int, default=None, help="frame width in pixels")
    group.add_argument("--height", type=_positive_int, default=None, help="frame height in pixels")
    group.add_argument("--num-tasks", type=_positive_int, default=None, help="number of tasks (default 5)")


def _add_eval(subparsers: Any) -> None:
    """``laecips eval``: every method on one stream; results.json, tables and figures."""
    from laecips_core.storage import bags

    p = subparsers.add_parser(
        "eval",
        help="evaluate LAECIPS and the baselines on the benchmark or a rosbag2",
        description=(
            "Run LAECIPS, DCSB, MESS, SM, SPP, EDGE and CLOUD on the same stream with the same starting "
            "edge model f and write results.json, table1.md, table2.md and PNG figures into --out."
        ),
    )
    src = p.add_argument_group("rosbag2 input (instead of the built-in benchmark)")
    src.add_argument("--bag", type=Path, default=None, help="rosbag2 directory, .mcap or .db3 file")
    src.add_argument(
        "--image-topic", default=bags.DEFAULT_TOPICS.image, help="Image or CompressedImage topic"
    )
    src.add_argument(
        "--label-topic",
        default=None,
        help=f"mono8/mono16 ground-truth topic (default {bags.DEFAULT_TOPICS.labels} when the bag has it)",
    )
    src.add_argument("--no-labels", action="store_true", help="ignore ground truth even if the bag has it")
    src.add_argument(
        "--task-topic",
        default=None,
        help=f"std_msgs integer task-id topic (default {bags.DEFAULT_TOPICS.task} when the bag has it)",
    )
    src.add_argument(
        "--task-boundaries",
        default=None,
        help="task start times t1,t2,... in seconds since the bag's start (instead of a task topic)",
    )
    src.add_argument("--classes-topic", default=bags.DEFAULT_TOPICS.classes, help="class-list JSON topic")
    src.add_argument("--max-frames", type=_positive_int, default=None, help="use at most this many frames")
    _add_benchmark_args(p, frames_default=None)
    model = p.add_argument_group("starting edge model f and miner h")
    model.add_argument(
        "--weights", type=Path, default=None, help="a safetensors bundle of f and h to start from"
    )
    model.add_argument(
        "--weights-profile",
        default=None,
        help="pre-training profile of the default weights: 'default', or 'test' (the --quick default)",
    )
    model.add_argument(
        "--pretrain-task",
        type=int,
        default=None,
        metavar="K",
        help="pre-train f and h on the labelled frames of task K, then stream the remaining tasks",
    )
    model.add_argument("--num-classes", type=_positive_int, default=None, metavar="M", help="class count M")
    methods = p.add_argument_group("methods, thresholds and link")
    methods.add_argument(
        "--methods",
        default=None,
        help="comma-separated subset of LAECIPS,DCSB,MESS,SM,SPP,EDGE,CLOUD (default: all)",
    )
    methods.add_argument(
        "--lvm",
        default=None,
        help="large vision model (default: the weights profile's, hierarchy on CPU; oracle = UPPER BOUND)",
    )
    methods.add_argument(
        "--sam-checkpoint",
        type=Path,
        default=None,
        help="SAM checkpoint for --lvm sam (.pth or .safetensors)",
    )
    methods.add_argument(
        "--stream-norm-prior",
        type=float,
        default=None,
        metavar="N",
        help="BatchNorm prior strength N of f on the robot: each frame is normalised with (N * stored + "
        "its own statistics) / (N + 1); 0 = stored statistics only, the paper's f (default 16)",
    )
    methods.add_argument(
        "--cur-budget", type=_fraction, default=None, help="target cloud upload rate for delta (default 0.35)"
    )
    methods.add_argument(
        "--latency-budget-s",
        type=_positive_float,
        default=None,
        help="choose delta from a mean-latency budget via Eq. 10 instead of a CUR budget",
    )
    methods.add_argument(
        "--calibrate-on",
        choices=("calibration", "stream"),
        default=None,
        help="frames on which the starting delta is set: the stream's own (default) or held-out "
        "pre-training frames ('calibration')",
    )
    methods.add_argument(
        "--delta-window",
        type=int,
        default=None,
        help="frames of own confidences delta tracks the budget over (default 50; 0: fixed delta)",
    )
    methods.add_argument(
        "--explore-rate", type=_fraction, default=None, help="random easy uploads (default 0.02)"
    )
    methods.add_argument("--bandwidth-mbps", type=_positive_float, default=None, help="link rate (default 4)")
    methods.add_argument(
        "--rtt-ms", type=_non_negative_float, default=None, help="round trip time (default 20)"
    )
    methods.add_argument("--epochs", type=_positive_int, default=None, help="training epochs per trigger")
    methods.add_argument(
        "--maxsize", type=_positive_int, default=None, help="replay buffer size that triggers"
    )
    methods.add_argument(
        "--train-max-pixels",
        type=_positive_int,
        default=None,
        help="continual-training resolution: the frame size scaled to at most this many pixels (76800)",
    )
    methods.add_argument("--maxtime-s", type=_positive_float, default=None, help="buffer age that triggers")
    out = p.add_argument_group("output")
    out.add_argument("--out", type=Path, default=Path("eval_out"), help="output folder (default ./eval_out)")
    out.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    out.add_argument("--quick", action="store_true", help="tiny, fast run for CI (small frames, few frames)")
    out.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    out.add_argument(
        "--no-progress",
        action="store_true",
        help="no tqdm bars: plain progress lines instead (each step; one line per task and per method "
        "with the elapsed time)",
    )
    p.set_defaults(handler=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    """Handler of ``laecips eval``."""
    from laecips_core.evaluation.pipeline import run_evaluation
    from laecips_core.evaluation.results import format_summary
    from laecips_core.evaluation.run_config import EvalConfig
    from laecips_core.storage import bags

    boundaries = bags.parse_task_boundaries(args.task_boundaries) if args.task_boundaries else None
    methods = None
    if args.methods:
        methods = tuple(m.strip().upper() for m in args.methods.split(",") if m.strip())
    cfg = EvalConfig.from_options(
        quick=args.quick,
        bag=args.bag,
        image_topic=args.image_topic,
        label_topic=args.label_topic,
        use_labels=not args.no_labels,
        task_topic=args.task_topic,
        task_boundaries=boundaries,
        classes_topic=args.classes_topic,
        max_frames=args.max_frames,
        seed=args.seed,
        frames_per_task=args.frames_per_task,
        width=args.width,
        height=args.height,
        num_tasks=args.num_tasks,
        weights=args.weights,
        weights_profile=args.weights_profile,
        pretrain_task=args.pretrain_task,
        num_classes=args.num_classes,
        methods=methods,
        lvm=args.lvm,
        stream_norm_prior=args.stream_norm_prior,
        sam_checkpoint=args.sam_checkpoint,
        cur_budget=args.cur_budget,
        latency_budget_s=args.latency_budget_s,
        calibrate_on=args.calibrate_on,
        delta_window=args.delta_window,
        explore_rate=args.explore_rate,
        bandwidth_mbps=args.bandwidth_mbps,
        rtt_ms=args.rtt_ms,
        epochs=args.epochs,
        maxsize=args.maxsize,
        maxtime_s=args.maxtime_s,
        train_max_pixels=args.train_max_pixels,
        out=args.out,
        threads=args.threads,
        plots=not args.no_plots,
        progress=not args.no_progress,
    )
    log = (lambda line: print(line, flush=True)) if args.no_progress else None
    results = run_evaluation(cfg, log=log)
    print(format_summary(results))
    print(f"results written to {args.out}")
    return 0


def _add_record_bag(subparsers: Any) -> None:
    """``laecips record-bag``: the benchmark stream into a rosbag2."""
    from laecips_core.storage import bags

    p = subparsers.add_parser(
        "record-bag",
        help="write the built-in benchmark stream to a rosbag2 (image, labels, task, classes)",
        description=(
            f"Topics: {bags.DEFAULT_TOPICS.image} (Image rgb8 or CompressedImage jpeg), "
            f"{bags.DEFAULT_TOPICS.labels} (Image mono8), {bags.DEFAULT_TOPICS.task} (UInt8/Int32), "
            f"{bags.DEFAULT_TOPICS.classes} (String JSON, latched); header stamps are frame timestamps."
        ),
    )
    p.add_argument("out", type=Path, help="bag directory to create (must not exist)")
    p.add_argument(
        "--storage", choices=("mcap", "sqlite3"), default="mcap", help="storage plugin (default mcap)"
    )
    p.add_argument("--compressed", action="store_true", help="CompressedImage jpeg instead of rgb8 Image")
    p.add_argument("--jpeg-quality", type=_positive_int, default=90, help="JPEG quality with --compressed")
    p.add_argument("--task-type", choices=("uint8", "int32"), default="uint8", help="task message type")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    _add_benchmark_args(p, frames_default=None)
    p.set_defaults(handler=_run_record_bag)


def benchmark_config(args: argparse.Namespace) -> Any:
    """A ``data.BenchmarkConfig`` from the benchmark options; unset ones take ``laecips eval``'s defaults,
    so that ``record-bag`` followed by ``eval --bag`` replays the stream ``eval`` evaluates by default."""
    from laecips_core import benchmark as data
    from laecips_core.evaluation.run_config import EvalConfig

    defaults = EvalConfig()
    values = {
        key: getattr(args, key) if getattr(args, key, None) is not None else getattr(defaults, key)
        for key in ("frames_per_task", "width", "height", "num_tasks")
    }
    return data.BenchmarkConfig(seed=args.seed, **values)


def _run_record_bag(args: argparse.Namespace) -> int:
    """Handler of ``laecips record-bag``."""
    from laecips_core.storage import bags

    cfg = benchmark_config(args)
    path = bags.write_benchmark_bag(
        args.out,
        cfg,
        storage=args.storage,
        compressed=args.compressed,
        jpeg_quality=args.jpeg_quality,
        task_type=args.task_type,
        progress=not args.no_progress,
    )
    print(f"wrote {cfg.frames_per_task * cfg.num_tasks} frames to {path} ({args.storage})")
    return 0


def _add_pretrain(subparsers: Any) -> None:
    """``laecips pretrain``: pre-train f and h (laecips_core.training.pretraining) into the weights cache."""
    p = subparsers.add_parser(
        "pretrain",
        help="pre-train the edge model f and the miner h of a profile (cached safetensors bundle)",
        description=(
            "Pre-trains f on task-1 frames of the benchmark and h on the paper's HARD/EASY labels, once per "
            "profile and recipe; later calls return the cached bundle. Cache: --cache-dir, else "
            "$LAECIPS_WEIGHTS_CACHE, else $XDG_CACHE_HOME/laecips/weights (~/.cache/laecips/weights)."
        ),
    )
    p.add_argument(
        "--profile", default="default", help="'default' (alias demo, eval) or 'test' (tiny, seconds)"
    )
    p.add_argument("--cache-dir", type=Path, default=None, help="where bundles are cached")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.set_defaults(handler=_run_pretrain)


def _run_pretrain(args: argparse.Namespace) -> int:
    """Handler of ``laecips pretrain``."""
    from laecips_core.training import pretraining

    path = pretraining.ensure_default_weights(
        args.cache_dir, profile=args.profile, progress=not args.no_progress
    )
    print(f"weights: {path}")
    return 0


def _add_keygen(subparsers: Any) -> None:
    """``laecips keygen``: an Ed25519 key pair for signing model updates."""
    p = subparsers.add_parser("keygen", help="create an Ed25519 key pair for signed model updates")
    p.add_argument("dir", type=Path, help="directory for the private and public key files")
    p.set_defaults(handler=_run_keygen)


def _run_keygen(args: argparse.Namespace) -> int:
    """Handler of ``laecips keygen``."""
    from laecips_core.storage import signing

    priv, pub = signing.generate_keypair(args.dir)
    print(f"private key: {priv}\npublic key:  {pub}")
    return 0


def _add_sign(subparsers: Any) -> None:
    """``laecips sign``: the ``.sig`` sidecar that lets nodes with trusted_public_key load a bundle."""
    p = subparsers.add_parser(
        "sign",
        help="sign a weights bundle (writes BUNDLE.sig) so that nodes with trusted_public_key load it",
    )
    p.add_argument("bundle", type=Path, help="safetensors bundle of f and h (e.g. laecips pretrain's)")
    p.add_argument("--key", type=Path, required=True, help="Ed25519 private key (laecips keygen's .key)")
    p.set_defaults(handler=_run_sign)


def _run_sign(args: argparse.Namespace) -> int:
    """Handler of ``laecips sign``: check the bundle loads, then sign its SHA-256 beside it."""
    from laecips_core.storage import bundle_loading, signing

    bundle_loading.load_bundle(args.bundle)  # vouch only for a file the nodes can load
    digest = files.sha256_file(args.bundle)
    path = signing.write_signature(args.bundle, signing.sign_digest(args.key, digest))
    print(f"signature: {path} (sha256 {digest})")
    return 0


def _add_export_onnx(subparsers: Any) -> None:
    """``laecips export-onnx``: add ONNX graphs of f and h to a bundle (lean edges), or extract them."""
    p = subparsers.add_parser(
        "export-onnx",
        help="add ONNX graphs of f and h to a bundle so a lean edge runs it without torch; or extract them",
    )
    p.add_argument("bundle", type=Path, help="safetensors bundle of f and h (e.g. laecips pretrain's)")
    p.add_argument("--out", type=Path, help="bundle to write (default: BUNDLE with the suffix -onnx)")
    p.add_argument(
        "--stream-norm-prior",
        type=float,
        default=None,
        help="N of the per-frame BatchNorm statistics in f's graph (default: the edge's default, 16)",
    )
    p.add_argument(
        "--size",
        default="240x320",
        help="HxW f is traced at; an f without symbolic sizes (the default f) runs at it on the lean edge "
        "(default: the trainer's training resolution, as the graphs it ships)",
    )
    p.add_argument("--key", type=Path, help="Ed25519 private key: also write OUT.sig (laecips keygen's .key)")
    p.add_argument(
        "--extract",
        type=Path,
        metavar="DIR",
        help="instead: verify BUNDLE and write its graphs as DIR/f.onnx and DIR/h.onnx (for trtexec)",
    )
    p.set_defaults(handler=_run_export_onnx)


def _run_export_onnx(args: argparse.Namespace) -> int:
    """Handler of ``laecips export-onnx``."""
    from laecips_core.storage import bundle_loading, signing

    if args.extract is not None:
        graphs = bundle_loading.load_onnx_graphs(args.bundle)
        args.extract.mkdir(parents=True, exist_ok=True)
        for name, graph in (("f", graphs.f), ("h", graphs.h)):
            files.atomic_write_bytes(args.extract / f"{name}.onnx", graph)
        print(
            f"graphs: {args.extract / 'f.onnx'} {args.extract / 'h.onnx'} "
            f"(stream_norm_prior {graphs.stream_norm_prior:g}, "
            f"h input {graphs.metadata.get('miner_in_size', '64,64')})"
        )
        return 0
    from laecips_core.algo.frames import DEFAULT_STREAM_NORM_PRIOR
    from laecips_core.training.onnx_bundle import bundle_with_onnx

    try:
        height, width = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size must be HxW in pixels (e.g. 480x640), got {args.size!r}") from None
    prior = DEFAULT_STREAM_NORM_PRIOR if args.stream_norm_prior is None else args.stream_norm_prior
    out = args.out or args.bundle.with_name(f"{args.bundle.stem}-onnx{args.bundle.suffix}")
    data = bundle_with_onnx(bundle_loading.load_bundle(args.bundle), prior, (height, width))
    files.atomic_write_bytes(out, data)
    digest = files.sha256_bytes(data)
    print(f"bundle with ONNX graphs: {out} ({len(data) / 2**20:.1f} MiB, sha256 {digest})")
    if args.key is not None:
        print(f"signature: {signing.write_signature(out, signing.sign_digest(args.key, digest))}")
    return 0


BUILTIN_COMMANDS: tuple[Callable[[Any], None], ...] = (
    _add_eval,
    _add_record_bag,
    _add_pretrain,
    _add_keygen,
    _add_sign,
    _add_export_onnx,
)


def _load_plugins(subparsers: Any) -> None:
    """Let every ``laecips.commands`` entry point add its subcommand; a broken plugin only warns."""
    for ep in metadata.entry_points(group=PLUGIN_GROUP):
        try:
            register = ep.load()
            register(subparsers)
        except Exception as err:  # a plugin must not take the other commands down
            print(
                f"laecips: warning: plugin command {ep.name!r} ({ep.value}) is unusable: {err}",
                file=sys.stderr,
            )


def build_parser(*, plugins: bool = True) -> argparse.ArgumentParser:
    """The ``laecips`` argument parser with built-in and (optionally) plugin subcommands."""
    parser = argparse.ArgumentParser(
        prog="laecips",
        description="LAECIPS on ROS 2: offline evaluation, rosbag2 recording, pre-training, keys.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for add in BUILTIN_COMMANDS:
        add(subparsers)
    if plugins:
        _load_plugins(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: run one subcommand; errors are one line on stderr and exit status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (LaecipsError, OSError) as err:
        print(f"laecips {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"laecips {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
