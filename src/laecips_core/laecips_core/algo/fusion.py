"""Assisted inference F (Algorithm 1): fuse the edge scores f(x) with the class-agnostic masks of SAM(x)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeAlias

import numpy as np
import torch

from laecips_core.errors import ConfigError

Scores: TypeAlias = np.ndarray | torch.Tensor
"""Per-class scores (M, H, W) float: numpy, or a torch tensor on any device."""

MaskInput: TypeAlias = np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor]
"""Masks: bool (K, H, W) array/tensor, or a sequence of K (H, W) bool arrays/tensors (K may be 0)."""

MaskOrder: TypeAlias = Literal["area", "input"]

ORDERS: tuple[str, ...] = ("area", "input")
"""Accepted values of ``order``: "area" (largest mask first, so smaller masks win) or "input"."""

_GATHER_MAX_FRACTION = 0.5
"""Above this fraction of pixels covered by no mask, the edge argmax is taken over the whole image;
below it only over the uncovered pixels (the covered ones get their mask's class anyway)."""


def assisted_inference(probs: Scores, masks: MaskInput, *, order: MaskOrder = "area") -> Scores:
    """Algorithm 1, vectorised: the edge label map with every SAM mask relabelled by its best class.

    Semantics (exactly those of :func:`assisted_inference_loop`): start from ``argmax_c probs[c]``
    (ties: the lowest class); apply the masks in order of decreasing area (``order="area"``, stable,
    so equal areas keep their input order; ``order="input"`` applies them as given); a later mask
    overwrites an earlier one where they overlap; each mask gets ``argmax_c sum_{p in mask} probs[c, p]``
    over ALL of its pixels (ties: the lowest class); empty masks change nothing.

    The paper defines f(x) as softmax probabilities, so pass probabilities to follow it; the
    authors' public code sums raw logits instead. Whatever scores are passed are summed as given.

    How: the masks are packed into per-pixel membership bits (8 masks a byte), the image (flattened
    row-major) is cut into runs of pixels with the same membership, the scores are summed per run in
    one pass (``np.add.reduceat``), runs with equal membership are grouped, and everything else (mask
    sums = membership @ group sums, areas, the winning mask of each group) works on the groups, not
    on the pixels; the edge argmax is taken only where no mask lands. There is no Python loop over
    classes. Run sums are accumulated in the scores' dtype (float32 for float32 input) and combined
    in float64, so class sums that differ by less than ~1e-6 relative may resolve differently from
    the float64 oracle. Scores are expected finite (NaN is not checked, for speed). The device path
    (CUDA tensors) takes the run sums from a float64 prefix sum instead.

    Args:
        probs: Scores f(x), (M, H, W) float; numpy, or a torch tensor on any device (the work then
            runs on that device; CPU tensors share memory with numpy).
        masks: SAM(x): (K, H, W) bool array/tensor or a sequence of (H, W) bool arrays/tensors,
            K >= 0. Integer masks are read as ``mask != 0``.
        order: "area" (paper DECISION: largest first, smaller masks win) or "input".

    Returns:
        F(x): (H, W) labels, uint8 (int32 when M > 255), of the same kind (numpy / torch, device)
        as ``probs``.

    Raises:
        ConfigError: If a shape, dtype or ``order`` is not as described above.
    """
    _check_order(order)
    if isinstance(probs, torch.Tensor) and probs.device.type != "cpu":
        return _assisted_inference_torch(probs, masks, order)
    scores, mask_list, as_torch = _numpy_inputs(probs, masks)
    labels = _assisted_inference_numpy(scores, mask_list, order)
    return torch.from_numpy(labels) if as_torch else labels


def assisted_inference_loop(probs: Scores, masks: MaskInput, *, order: MaskOrder = "area") -> Scores:
    """Algorithm 1 as written: a plain Python loop over masks and classes (the test oracle).

    Same arguments, semantics and return kind as :func:`assisted_inference`; class sums are float64.
    Slow (K * M boolean-indexed sums): use it to check the vectorised version, not in a pipeline.
    """
    _check_order(order)
    device = probs.device if isinstance(probs, torch.Tensor) else None
    scores, mask_list, as_torch = _numpy_inputs(probs, masks)
    m = scores.shape[0]
    labels: np.ndarray = np.argmax(scores, axis=0).astype(_label_dtype(m))
    areas = [int(np.count_nonzero(mask)) for mask in mask_list]
    sequence: Sequence[int] = range(len(mask_list))
    if order == "area":
        sequence = sorted(sequence, key=lambda i: -areas[i])  # sorted() is stable: ties keep input order
    for i in sequence:
        if areas[i] == 0:
            continue
        inside = mask_list[i] != 0
        best_class, best_sum = 0, -np.inf
        for c in range(m):
            total = float(np.sum(scores[c][inside], dtype=np.float64))
            if total > best_sum:
                best_class, best_sum = c, total
        labels[inside] = best_class
    if not as_torch:
        return labels
    return torch.from_numpy(labels).to(device)


def _check_order(order: str) -> None:
    if order not in ORDERS:
        raise ConfigError(f"order={order!r} is not supported: use one of {ORDERS}")


def _label_dtype(num_classes: int) -> type[np.unsignedinteger] | type[np.signedinteger]:
    return np.uint8 if num_classes <= 255 else np.int32


def _check_scores_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(
            f"probs has shape {tuple(shape)}: pass per-class scores (M, H, W) with M, H, W >= 1 "
            "(one image; loop over a batch)"
        )
    return int(shape[0]), int(shape[1]), int(shape[2])


def _mask_error(what: str, height: int, width: int) -> ConfigError:
    return ConfigError(
        f"masks {what}: pass a bool (K, H, W) array/tensor or a list of (H, W) bool masks with "
        f"(H, W) = ({height}, {width}) as in probs"
    )


def _check_mask_dtype(dtype: np.dtype | torch.dtype, height: int, width: int) -> None:
    if isinstance(dtype, torch.dtype):
        ok = dtype == torch.bool or not (dtype.is_floating_point or dtype.is_complex)
    else:
        ok = dtype == np.bool_ or np.issubdtype(dtype, np.integer)
    if not ok:
        raise _mask_error(f"have dtype {dtype} (threshold soft masks first)", height, width)


def _numpy_inputs(probs: Scores, masks: MaskInput) -> tuple[np.ndarray, list[np.ndarray], bool]:
    """Validate and convert to numpy: scores (M, H, W) float32/64, masks as a list of (H, W) arrays."""
    as_torch = isinstance(probs, torch.Tensor)
    if isinstance(probs, torch.Tensor):
        if not probs.is_floating_point():
            raise ConfigError(f"probs has dtype {probs.dtype}: pass float scores (M, H, W)")
        tensor = probs.detach().cpu()
        if tensor.dtype not in (torch.float32, torch.float64):
            tensor = tensor.float()
        scores = tensor.numpy()
    else:
        scores = np.asarray(probs)
        if not np.issubdtype(scores.dtype, np.floating):
            raise ConfigError(f"probs has dtype {scores.dtype}: pass float scores (M, H, W)")
        if scores.dtype not in (np.float32, np.float64):
            scores = scores.astype(np.float32)
    _, height, width = _check_scores_shape(scores.shape)
    return np.ascontiguousarray(scores), _numpy_mask_list(masks, height, width), as_torch


def _numpy_mask_list(masks: MaskInput, height: int, width: int) -> list[np.ndarray]:
    if isinstance(masks, (np.ndarray, torch.Tensor)):
        if masks.ndim != 3 or tuple(masks.shape[1:]) != (height, width):
            raise _mask_error(f"have shape {tuple(masks.shape)}", height, width)
        items: Sequence[np.ndarray | torch.Tensor] = list(masks)
    else:
        items = masks
    out = []
    for i, mask in enumerate(items):
        if not isinstance(mask, (np.ndarray, torch.Tensor)):
            raise _mask_error(f"[{i}] is a {type(mask).__name__}", height, width)
        if tuple(mask.shape) != (height, width):
            raise _mask_error(f"[{i}] has shape {tuple(mask.shape)}", height, width)
        _check_mask_dtype(mask.dtype, height, width)
        array = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else mask
        out.append(array)
    return out


def _assisted_inference_numpy(scores: np.ndarray, masks: list[np.ndarray], order: str) -> np.ndarray:
    """The CPU path: scores (M, H, W) float32/64 C-contiguous, masks K (H, W) -> (H, W) labels."""
    m, height, width = scores.shape
    n = height * width
    flat = scores.reshape(m, n)
    dtype = _label_dtype(m)
    if not masks:
        return _first_argmax(flat).astype(dtype, copy=False).reshape(height, width)
    packed = _pack_masks(masks, n)
    starts = _run_starts(packed)
    lengths = np.diff(starts, append=n)
    run_sums = np.add.reduceat(flat, starts, axis=1)  # (M, R): the one pass over the scores
    run_label, covered = _label_runs(packed[:, starts], lengths, run_sums, len(masks), order)
    labels = np.repeat(np.where(covered, run_label, 0).astype(dtype), lengths)
    uncovered_runs = ~covered
    uncovered = int(lengths[uncovered_runs].sum())
    if uncovered > _GATHER_MAX_FRACTION * n:
        pixel_covered = np.repeat(covered, lengths)
        np.copyto(labels, _first_argmax(flat), where=~pixel_covered, casting="unsafe")
    elif uncovered:
        run_starts, run_lengths = starts[uncovered_runs], lengths[uncovered_runs]
        idx = _run_pixels(run_starts, run_lengths)
        labels[idx] = _first_argmax(_gather_runs(flat, run_starts, run_lengths))
    return labels.reshape(height, width)


_SLICE_MIN_MEAN_RUN = 32
"""Runs at least this long on average are copied as slices; shorter ones pixel by pixel (np.take)."""


def _gather_runs(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The columns of the given runs of ``flat`` (M, N), concatenated: (M, sum(lengths)), C-ordered.

    Long runs are copied as row slices (one memcpy per class and run), about 2x faster than a
    per-pixel gather; many short runs fall back to ``np.take`` (fewer Python-level slices).
    """
    if int(lengths.sum()) < _SLICE_MIN_MEAN_RUN * len(lengths):
        return np.take(flat, _run_pixels(starts, lengths), axis=1)  # C-ordered, unlike flat[:, idx]
    ends = (starts + lengths).tolist()
    return np.concatenate([flat[:, s:e] for s, e in zip(starts.tolist(), ends, strict=True)], axis=1)


def _first_argmax(scores: np.ndarray) -> np.ndarray:
    """``np.argmax(scores, axis=0)`` (ties: lowest index) for (M, P) scores, with column-wise vector ops.

    np.argmax over the first axis walks each pixel's M strided values one by one; here the work is
    three whole-row passes (max, equality, weighted max), about 4x faster for M = 19. Falls back to
    np.argmax when M > 255 or a NaN is present (np.argmax reports the first NaN).

    Returns:
        (P,) uint8 (or intp from the fallback) class indices.
    """
    m = scores.shape[0]
    if m > 255:
        return np.asarray(np.argmax(scores, axis=0))
    scores = np.ascontiguousarray(scores)  # the row passes need each class row contiguous
    top = np.maximum.reduce(scores, axis=0)
    if np.isnan(top).any():
        return np.asarray(np.argmax(scores, axis=0))
    hits = (scores == top).view(np.uint8)
    hits *= np.arange(m, 0, -1, dtype=np.uint8)[:, None]  # the first maximal class weighs most
    return np.asarray(m - np.maximum.reduce(hits, axis=0))


def _pack_masks(masks: list[np.ndarray], n: int) -> np.ndarray:
    """Membership bits: (G, n_pad) uint8, G = ceil(K / 8); bit k % 8 of byte [k // 8, p] = mask k at p.

    Works on uint64 words (8 pixels at once): a mask's 0/1 bytes shifted by k % 8 stay in their byte.
    """
    n_pad = -(-n // 8) * 8
    packed = np.zeros(((len(masks) + 7) // 8, n_pad), dtype=np.uint8)
    words = packed.view(np.uint64)
    scratch = np.zeros(n_pad, dtype=np.uint8)
    shifted = np.empty(n_pad // 8, dtype=np.uint64)
    for k, mask in enumerate(masks):
        row = words[k // 8]
        src = _mask_words(mask, n, scratch)
        if k % 8 == 0:
            np.bitwise_or(row, src, out=row)
        else:
            np.left_shift(src, np.uint64(k % 8), out=shifted)
            np.bitwise_or(row, shifted, out=row)
    return packed[:, :n]


def _mask_words(mask: np.ndarray, n: int, scratch: np.ndarray) -> np.ndarray:
    """A mask as 0/1 bytes viewed as uint64 words (no copy when it is contiguous and aligned)."""
    flat = mask.reshape(-1)
    u8 = flat.view(np.uint8) if flat.dtype == np.bool_ else (flat != 0).view(np.uint8)
    if n % 8 == 0 and u8.flags.c_contiguous and u8.ctypes.data % 8 == 0:
        return u8.view(np.uint64)
    scratch[:n] = u8
    return scratch.view(np.uint64)


def _run_starts(packed: np.ndarray) -> np.ndarray:
    """First pixel of every run of equal membership: (R,) int64, starts[0] == 0."""
    n = packed.shape[1]
    boundary = np.zeros(n, dtype=bool)
    boundary[0] = True
    differs = np.empty(n - 1, dtype=bool)
    for group in packed:  # ceil(K / 8) groups of masks, not classes
        np.not_equal(group[1:], group[:-1], out=differs)
        np.logical_or(boundary[1:], differs, out=boundary[1:])
    return np.flatnonzero(boundary)


def _run_pixels(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Flat pixel indices of the given runs, concatenated: (sum(lengths),) int64."""
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))


def _label_runs(
    keys: np.ndarray, lengths: np.ndarray, run_sums: np.ndarray, num_masks: int, order: str
) -> tuple[np.ndarray, np.ndarray]:
    """Resolve Algorithm 1 on runs (shared by the numpy and torch paths).

    Runs with the same membership ("combinations", C of them, C << R) are grouped first; then the
    class sums of every mask are ``membership (K, C) @ combination sums (C, M)`` (float64, summed
    over the nonzeros, no BLAS: tiny products pay BLAS thread wake-ups on a busy host), its area
    ``membership @ combination pixel counts``, and the winner of a combination is the covering mask
    applied last.

    Args:
        keys: (G, R) uint8 membership bits of each run (see ``_pack_masks``).
        lengths: (R,) int pixels per run.
        run_sums: (M, R) float per-class score sums of each run.
        num_masks: K.
        order: "area" or "input".

    Returns:
        run_label (R,) int64 (the winning mask's class; meaningless where not covered) and
        covered (R,) bool (some mask covers the run).
    """
    groups, runs = keys.shape
    rows = np.zeros((runs, -(-groups // 8) * 8), dtype=np.uint8)
    rows[:, :groups] = keys.T
    words = rows.view(np.uint64)  # (R, W): exact keys, W = ceil(K / 64)
    # Sort by a 64-bit hash of the key; groups are then cut wherever the EXACT key changes, so a
    # hash collision can only split a combination into two groups (still correct), never merge two.
    hashed = words[:, 0].copy()
    for j in range(1, words.shape[1]):  # words of 64 masks, not classes
        hashed *= np.uint64(0x9E3779B97F4A7C15)
        hashed += words[:, j]
    perm = np.argsort(hashed)
    ordered = words[perm]
    new = np.ones(runs, dtype=bool)
    new[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    first = np.flatnonzero(new)  # (C,) start of each combination in sorted order
    combo_of_run = np.empty(runs, dtype=np.intp)
    combo_of_run[perm] = np.cumsum(new) - 1
    # (C, M): long segments along the last axis (np.add.reduceat over rows pays ~0.1 us per row).
    combo_sums = np.add.reduceat(np.take(run_sums, perm, axis=1).astype(np.float64), first, axis=1).T
    combo_pixels = np.add.reduceat(lengths[perm].astype(np.float64), first)  # (C,)
    membership = np.unpackbits(rows[perm[first], :groups].T, axis=0, count=num_masks, bitorder="little")
    mask_of, combo_in = np.nonzero(membership)  # sparse: a few masks cover each combination
    areas = np.bincount(mask_of, weights=combo_pixels[combo_in], minlength=num_masks)  # (K,), exact
    class_sums = np.zeros((num_masks, combo_sums.shape[1]), dtype=np.float64)
    np.add.at(class_sums, mask_of, combo_sums[combo_in])  # (K, M) = membership @ combination sums
    mask_class = np.argmax(class_sums, axis=1)  # (K,), ties: lowest class
    sequence = np.argsort(-areas, kind="stable") if order == "area" else np.arange(num_masks)
    rank = np.empty(num_masks, dtype=np.int64)
    rank[sequence] = np.arange(1, num_masks + 1)  # 1 = applied first
    last = (membership * rank[:, None]).max(axis=0)  # (C,): rank of the last mask applied, 0 = none
    combo_label = mask_class[sequence[last - 1]]
    return combo_label[combo_of_run], (last > 0)[combo_of_run]


def _assisted_inference_torch(probs: torch.Tensor, masks: MaskInput, order: str) -> torch.Tensor:
    """The device path (also runs on CPU tensors, for tests): same runs, computed with torch ops."""
    if not probs.is_floating_point():
        raise ConfigError(f"probs has dtype {probs.dtype}: pass float scores (M, H, W)")
    m, height, width = _check_scores_shape(tuple(probs.shape))
    n = height * width
    device = probs.device
    flat = probs.detach().reshape(m, n)
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.float()
    label_dtype = torch.uint8 if m <= 255 else torch.int32
    stack = _torch_mask_stack(masks, height, width, device)  # (K, N) uint8 0/1
    base = flat.argmax(dim=0)
    num_masks = stack.shape[0]
    if num_masks == 0:
        return base.to(label_dtype).reshape(height, width)
    packed = stack[0::8].clone()  # (G, N): masks 0, 8, 16, ... in bit 0 (no padded copy of the stack)
    for bit in range(1, min(8, num_masks)):  # bit positions within a byte, not classes
        part = stack[bit::8]  # groups that have a mask at this bit: the first ceil((K - bit) / 8)
        packed[: part.shape[0]] |= part << bit
    boundary = torch.ones(n, dtype=torch.bool, device=device)
    boundary[1:] = (packed[:, 1:] != packed[:, :-1]).any(dim=0)
    starts = boundary.nonzero().squeeze(1)
    ends = torch.cat([starts[1:], torch.tensor([n], device=device)])
    lengths = ends - starts
    # Run sums as differences of a float64 prefix sum: deterministic (no atomics), equal rows stay equal.
    prefix = torch.nn.functional.pad(torch.cumsum(flat, dim=1, dtype=torch.float64), (1, 0))
    run_sums = prefix[:, ends] - prefix[:, starts]
    run_label, covered = _label_runs(
        packed[:, starts].cpu().numpy(),
        lengths.cpu().numpy(),
        run_sums.cpu().numpy(),
        num_masks,
        order,
    )
    per_run = torch.from_numpy(np.where(covered, run_label, -1)).to(device)
    per_pixel = torch.repeat_interleave(per_run, lengths)
    return torch.where(per_pixel >= 0, per_pixel, base).to(label_dtype).reshape(height, width)


def _torch_mask_stack(masks: MaskInput, height: int, width: int, device: torch.device) -> torch.Tensor:
    """Masks as one (K, H*W) uint8 0/1 tensor on ``device``."""
    if isinstance(masks, (np.ndarray, torch.Tensor)):
        if masks.ndim != 3 or tuple(masks.shape[1:]) != (height, width):
            raise _mask_error(f"have shape {tuple(masks.shape)}", height, width)
        _check_mask_dtype(masks.dtype, height, width)
        return _as_01_bytes(torch.as_tensor(masks, device=device)).reshape(-1, height * width)
    parts = []
    for i, mask in enumerate(masks):
        if not isinstance(mask, (np.ndarray, torch.Tensor)):
            raise _mask_error(f"[{i}] is a {type(mask).__name__}", height, width)
        if tuple(mask.shape) != (height, width):
            raise _mask_error(f"[{i}] has shape {tuple(mask.shape)}", height, width)
        _check_mask_dtype(mask.dtype, height, width)
        parts.append(_as_01_bytes(torch.as_tensor(mask, device=device)).reshape(1, -1))
    if not parts:
        return torch.zeros((0, height * width), dtype=torch.uint8, device=device)
    return torch.cat(parts)


def _as_01_bytes(mask: torch.Tensor) -> torch.Tensor:
    """A mask as uint8 0/1 values: a view of a contiguous bool tensor (no copy), else ``mask != 0``."""
    if mask.dtype == torch.bool and mask.is_contiguous():
        return mask.view(torch.uint8)
    return (mask != 0).view(torch.uint8)
