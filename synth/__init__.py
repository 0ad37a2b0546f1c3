"""Synthetic partner exports with planted PHI and a ground-truth file (``python -m synth``).

Two partners (``clinica_andes_co``, ``hospital_paulista_br``) get realistic
hospital export trees: multi-series DICOM studies (CT, MR, US, MG, CR, DX)
with identifying data wherever real files have it (tags, sequences, private
tags, burned-in pixels), diagnosis reports (.txt / PDF) in Spanish,
Portuguese and English, and a few broken files. ``OUT/truth.json`` lists
every planted PHI value per file and every planted finding, so the pipeline
can be scored: nothing identifying may survive de-identification, and every
finding should be recoverable.

Same seed, same bytes. Entry point: :func:`generate`.
"""

from .generator import generate

__all__ = ["generate"]
