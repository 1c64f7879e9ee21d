"""Zenoh plumbing of every LAECIPS process: json5 config loading (TLS, access control), opening sessions.

Multicast scouting is always forced off (the project's network rule); peers meet only through explicit
listen/connect endpoints. No paper step: this is the link the edge-cloud collaboration runs over.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import zenoh

from laecips_core.errors import ConfigError

__all__ = [
    "config_endpoints",
    "find_config",
    "load_zenoh_config",
    "open_session",
    "wait_until",
]

_ENDPOINT_RE: Final = re.compile(r"[a-z0-9]+/\S+")
_MODES: Final = ("peer", "client", "router")
# Config entries holding file paths: resolved against the json5 file's folder when relative.
_PATH_KEYS: Final = (
    "transport/link/tls/root_ca_certificate",
    "transport/link/tls/listen_certificate",
    "transport/link/tls/listen_private_key",
    "transport/link/tls/connect_certificate",
    "transport/link/tls/connect_private_key",
    "transport/auth/usrpwd/dictionary_file",
)
_CHECKOUT_ROOT: Final = Path(__file__).resolve().parents[4]
"""The source checkout this module lives in (src/laecips_core/laecips_core/transport/config.py)."""


def find_config(name: str) -> Path | None:
    """Locate one of the project's shipped config files (laecips_bringup's ``config/<name>``).

    Looks in the installed ``share/laecips_bringup/config`` of every prefix on ``AMENT_PREFIX_PATH``
    (a sourced colcon workspace), then in ``$LAECIPS_ROOT/src/laecips_bringup/config`` (set by
    scripts/env.sh), then in the source checkout this module lives in.

    Args:
        name: File name inside config/, e.g. "cloud.json5" or "tls/edge.json5".

    Returns:
        The path, or None when no such file exists.
    """
    folders = [
        Path(prefix) / "share" / "laecips_bringup" / "config"
        for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)
        if prefix
    ]
    checkouts = [Path(os.environ["LAECIPS_ROOT"])] if os.environ.get("LAECIPS_ROOT") else []
    checkouts.append(_CHECKOUT_ROOT)
    folders += [root / "src" / "laecips_bringup" / "config" for root in checkouts]
    for folder in folders:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def _check_endpoints(what: str, endpoints: list[str]) -> None:
    if not isinstance(endpoints, list) or not all(isinstance(e, str) for e in endpoints):
        raise ConfigError(f"zenoh {what} endpoints must be a list of strings like 'tcp/127.0.0.1:7447'")
    for endpoint in endpoints:
        if not _ENDPOINT_RE.fullmatch(endpoint):
            raise ConfigError(
                f"zenoh {what} endpoint {endpoint!r} is not '<protocol>/<address>', e.g. 'tcp/127.0.0.1:7447'"
            )


def _insert(config: zenoh.Config, key: str, value: Any) -> None:
    try:
        config.insert_json5(key, json.dumps(value))
    except zenoh.ZError as err:
        raise ConfigError(
            f"zenoh config key {key!r} refused value {value!r}: {err}; see zenoh's DEFAULT_CONFIG.json5"
        ) from err


def _loopback(endpoint: str) -> str:
    return endpoint.replace("[::]", "127.0.0.1").replace("0.0.0.0", "127.0.0.1")


def load_zenoh_config(
    path: str | None = None,
    *,
    mode: str | None = None,
    listen: list[str] | None = None,
    connect: list[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> zenoh.Config:
    """Build the one Zenoh config of a process: a json5 file, then explicit overrides.

    Relative certificate/key/dictionary paths in the file are resolved against the file's folder, so the
    TLS variants in config/tls/ work from any working directory. Multicast scouting is ALWAYS forced off
    (the network rule of this project): peers only meet through explicit listen/connect endpoints. Where
    neither the file nor the arguments set listen endpoints, Zenoh's implicit ones (every interface) are
    narrowed to 127.0.0.1.

    Args:
        path: json5 file (e.g. config/cloud.json5); None or "" starts from Zenoh's defaults (peer mode).
        mode: "peer", "client" or "router"; None keeps the file's.
        listen: Endpoints to listen on (replace the file's), e.g. ["tcp/127.0.0.1:7447"].
        connect: Endpoints to connect to (replace the file's).
        overrides: Further entries, {"transport/shared_memory/enabled": False, ...}; values are plain
            Python (dumped as JSON), keys are Zenoh's slash-separated config paths.

    Returns:
        A zenoh.Config ready for zenoh.open().

    Raises:
        ConfigError: missing/unreadable file, json5 syntax error, unknown key, bad mode or endpoint.
    """
    if path:
        file = Path(path).expanduser()
        if not file.is_file():
            raise ConfigError(f"zenoh config {file} does not exist; pass an existing json5 file or ''")
        try:
            config = zenoh.Config.from_json5(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read zenoh config {file}: {err}") from err
        except zenoh.ZError as err:
            raise ConfigError(f"zenoh config {file} is not valid json5 for zenoh: {err}") from err
        for key in _PATH_KEYS:
            value = json.loads(config.get_json(key))
            if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
                _insert(config, key, str((file.parent / value).resolve()))
    else:
        config = zenoh.Config()
    if mode is not None:
        if mode not in _MODES:
            raise ConfigError(f"zenoh mode {mode!r} is not one of {_MODES}")
        _insert(config, "mode", mode)
    if listen is not None:
        _check_endpoints("listen", listen)
        _insert(config, "listen/endpoints", listen)
    if connect is not None:
        _check_endpoints("connect", connect)
        _insert(config, "connect/endpoints", connect)
    for key, value in (overrides or {}).items():
        _insert(config, key, value)
    implicit = json.loads(config.get_json("listen/endpoints"))
    if isinstance(implicit, dict):  # Zenoh's per-mode default listens on every interface: narrow it
        _insert(config, "listen/endpoints", {m: [_loopback(e) for e in eps] for m, eps in implicit.items()})
    # The network rule: never multicast, whatever the file or the overrides say.
    _insert(config, "scouting/multicast/enabled", False)
    return config


def open_session(config: zenoh.Config, *, retry_s: float = 0.0, period_s: float = 0.2) -> zenoh.Session:
    """Open a Zenoh session, turning Zenoh's errors (port in use, bad certificate) into ConfigError.

    A client-mode session needs its router at start: with retry_s > 0 the open is retried every
    period_s until it succeeds or retry_s seconds passed (e.g. nodes started just before the router).

    Args:
        config: From load_zenoh_config.
        retry_s: How long to keep retrying (seconds; 0 tries once).
        period_s: Pause between tries (seconds).

    Returns:
        The open session; close it (or use it in a ``with`` block).

    Raises:
        ConfigError: the last attempt's error (router not reachable, port in use, bad certificate).
    """
    deadline = time.monotonic() + max(0.0, retry_s)
    while True:
        try:
            return zenoh.open(config)
        except zenoh.ZError as err:
            if time.monotonic() + period_s > deadline:
                raise ConfigError(
                    f"cannot open the zenoh session: {err}; check that the router/peer is up, the "
                    "endpoints (port in use?) and the certificates"
                ) from err
        time.sleep(period_s)


def config_endpoints(config: zenoh.Config, which: str = "listen") -> list[str]:
    """Return the endpoints a config listens on or connects to ("listen" or "connect")."""
    value = json.loads(config.get_json(f"{which}/endpoints"))
    if isinstance(value, dict):  # per-mode form {"router": [...], "peer": [...]}
        mode = json.loads(config.get_json("mode")) or "peer"
        value = value.get(mode, [])
    return [str(v) for v in value or []]



def wait_until(predicate: Callable[[], object], timeout_s: float, period_s: float = 0.05) -> bool:
    """Poll predicate() until it is true or timeout_s passes (bounded helper for connection set-up).

    Returns:
        The last value of predicate() as a bool.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(period_s)
