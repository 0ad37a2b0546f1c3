"""Moved: the de-identifier is the package :mod:`anonymization.dicom` (readers, header,
actions, writer, verify, deidentifier). This name stays for callers not yet updated."""

from anonymization.dicom import DeidResult, Deidentifier, Quarantine  # noqa: F401

__all__ = ["DeidResult", "Deidentifier", "Quarantine"]
