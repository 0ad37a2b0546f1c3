"""Learned assertion model (placeholder until trained)."""
from __future__ import annotations


def load_assertion_model():  # noqa: ANN201
    return None
