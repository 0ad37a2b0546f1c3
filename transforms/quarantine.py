"""Moved to :mod:`foundation.quarantine` (kept as an alias for callers not yet updated)."""

from foundation.quarantine import REASON_SUFFIX, REASONS, Reason, describe, quarantine_file, read_reason

__all__ = ["REASON_SUFFIX", "REASONS", "Reason", "describe", "quarantine_file", "read_reason"]
