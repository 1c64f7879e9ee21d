"""Error classes of laecips_core: one small class per failure family, all under LaecipsError."""

from __future__ import annotations


class LaecipsError(Exception):
    """Base of every error raised on purpose by laecips_core."""


class ConfigError(LaecipsError, ValueError):
    """A configuration value is out of range or inconsistent (say which and what is allowed)."""


class ImageError(LaecipsError, ValueError):
    """An image or label map cannot be decoded: bad encoding, size, step or bytes."""


class WeightsError(LaecipsError):
    """Weights are unusable: wrong format, hash, signature, architecture or class count."""


class WireFormatError(LaecipsError, ValueError):
    """An edge-cloud message does not follow the versioned wire format."""


class BagError(LaecipsError):
    """A rosbag2 file cannot be read or written as asked (missing topic, unknown type)."""


class ReplayError(LaecipsError):
    """The replay buffer cannot store or return a sample."""


def error_reason(err: BaseException) -> str:
    """``Type: message`` of an exception, cut to 300 characters (for error texts that cross the wire)."""
    return f"{type(err).__name__}: {err}"[:300]
