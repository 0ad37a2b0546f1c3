"""The one way a DICOM file fails: :class:`Quarantine`, with a stable reason code.

``reason`` is a machine-readable code (``not_dicom``, ``residual_phi`` ...);
``detail`` explains it without any identifying value (it may name an element's
tag and the kind of value found, never the value), because reasons end up in
ledgers and reason files outside the partner enclave.
"""

from __future__ import annotations


class Quarantine(Exception):
    """A file that must not be published; ``reason`` is a stable code, ``detail`` names no PHI."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
