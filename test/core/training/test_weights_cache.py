"""Tests of the pre-trained weights' cache: code fingerprint, profile key, location, validity, lock."""

from __future__ import annotations

import fcntl
import json
from dataclasses import replace
from pathlib import Path

import pytest
from laecips_core.training import weights_cache
from laecips_core.training.profiles import get_profile
from laecips_core.training.weights_cache import (
    TRAINING_CODE,
    card_path,
    code_fingerprint,
    default_cache_dir,
    file_lock,
    is_cached,
    normalised_definitions,
    profile_key,
    training_code_files,
)

from laecips_core import files


def test_the_weights_key_ignores_comments_docstrings_imports_and_order_but_not_code() -> None:
    source = '"""Module."""\n\nimport os\n\ndef f(x: int) -> int:\n    """Doc."""\n    return x + 1  # one\n'
    source += 'Y = 2\n"""Y."""\n'
    reworded = '"""Other words."""\nfrom laecips_core import benchmark as os\n\nY = 2\n\n'
    reworded += 'def f(x: int) -> int:\n    """Eq. 13."""\n    # a comment\n    return x + 1\n'
    assert sorted(normalised_definitions(source)) == sorted(normalised_definitions(reworded))
    for changed in (
        source.replace("x + 1", "x + 2"),
        source.replace("x: int", "x: float"),
        source.replace("Y = 2", "Y = 3"),
    ):
        assert normalised_definitions(changed) != normalised_definitions(source)
    assert code_fingerprint() == code_fingerprint()


def test_the_weights_key_covers_every_training_code_file() -> None:
    found = training_code_files()
    names = {p.relative_to(Path(weights_cache.__file__).parents[1]).as_posix() for p in found}
    recipe = {f"training/{m}.py" for m in ("fit", "pretraining", "pretrain_stages", "profiles")}
    assert {"algo/models.py", "algo/fusion.py", *recipe} <= names
    assert any(n.startswith("benchmark/") for n in names) and any(n.startswith("lvm/") for n in names)
    assert all(p.is_file() for p in found)
    assert len(TRAINING_CODE) == len(set(TRAINING_CODE))


def test_a_missing_training_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights_cache, "TRAINING_CODE", ("training/no_such_module.py",))
    with pytest.raises(Exception, match="no_such_module.py is missing: reinstall laecips_core"):
        code_fingerprint()


def test_profile_key_follows_the_recipe_but_not_the_thread_count() -> None:
    prof = get_profile("test")
    key = profile_key(prof)
    assert len(key) == 64 and key == profile_key(get_profile("test"))
    assert profile_key(get_profile("demo")) == profile_key(get_profile("default")) != key
    assert profile_key(replace(prof, pretrain=replace(prof.pretrain, num_threads=2))) == key
    assert profile_key(replace(prof, pretrain=replace(prof.pretrain, epochs=3))) != key
    assert profile_key(replace(prof, eval_frames_per_task=2)) != key
    assert profile_key(replace(prof, benchmark={**prof.benchmark, "width": 320})) != key


def test_cache_location_and_card(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LAECIPS_WEIGHTS_CACHE", str(tmp_path / "w"))
    assert default_cache_dir() == tmp_path / "w"
    monkeypatch.delenv("LAECIPS_WEIGHTS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "laecips" / "weights"
    assert card_path(tmp_path / "laecips-test-abc.safetensors") == tmp_path / "laecips-test-abc.json"


def test_is_cached_needs_the_key_and_the_bundles_sha256(tmp_path: Path) -> None:
    bundle, card = tmp_path / "b.safetensors", tmp_path / "b.json"
    assert not is_cached(bundle, card, "k")
    bundle.write_bytes(b"weights")
    card.write_text(json.dumps({"data": {"key": "k"}, "sha256": files.sha256_file(bundle)}))
    assert is_cached(bundle, card, "k")
    assert not is_cached(bundle, card, "other key")
    bundle.write_bytes(b"weights, changed")
    assert not is_cached(bundle, card, "k")
    for broken in ("{not json", "[]", '{"data": {}}'):
        card.write_text(broken)
        assert not is_cached(bundle, card, "k")


def test_file_lock_is_exclusive_while_held(tmp_path: Path) -> None:
    lock = tmp_path / "sub" / "x.lock"
    with file_lock(lock), open(lock, "a+b") as other:
        with pytest.raises(BlockingIOError):
            fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(lock, "a+b") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # released after the block
        fcntl.flock(other.fileno(), fcntl.LOCK_UN)
