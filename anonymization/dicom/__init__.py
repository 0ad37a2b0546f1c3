"""DICOM de-identification, by step: readers -> header -> actions -> verify -> writer.

``Deidentifier`` (deidentifier.py) runs the steps for one file; ``batch`` runs
it over many. See each module's docstring for the part of PS3.15 it
implements.
"""

from anonymization.dicom.deidentifier import DeidResult, Deidentifier
from anonymization.dicom.errors import Quarantine

__all__ = ["DeidResult", "Deidentifier", "Quarantine"]
