"""Seeded randomness that does not depend on generation order.

Every entity (a patient, a study, a series, an image) draws from its own
generator, derived from the run seed and the entity's path with a hash. A
patient therefore looks the same whether the run has 5 or 100,000 patients,
and nothing leaks between entities through a shared generator state. No wall
clock and no process-global ``random`` are used anywhere in ``synth``.
"""

from __future__ import annotations

import hashlib
import math
import random

import numpy as np


def derive(seed: int, *parts: object) -> int:
    """A 64-bit integer determined by the seed and the parts only."""
    h = hashlib.blake2b(digest_size=8)
    h.update(str(int(seed)).encode())
    for p in parts:
        h.update(b"\x1f")
        h.update(str(p).encode("utf-8"))
    return int.from_bytes(h.digest(), "big")


def rng(seed: int, *parts: object) -> random.Random:
    """A ``random.Random`` for one entity (Mersenne Twister: stable across Python versions)."""
    return random.Random(derive(seed, *parts))


def np_rng(seed: int, *parts: object) -> np.random.Generator:
    """A numpy generator (PCG64, stable stream) for one entity's pixels."""
    return np.random.Generator(np.random.PCG64(derive(seed, *parts)))


def permute(i: int, modulus: int, seed: int, salt: str) -> int:
    """A bijection of ``range(modulus)``: unique identifiers that do not look sequential.

    ``a * i + b mod m`` with ``a`` coprime to ``m`` maps distinct ``i`` to
    distinct values, so MRNs and national IDs never collide, at any N, with no
    set of issued numbers kept in memory.
    """
    a = derive(seed, salt, "a") % modulus | 1
    while math.gcd(a, modulus) != 1:
        a += 2
    b = derive(seed, salt, "b") % modulus
    return (a * i + b) % modulus


def weighted(r: random.Random, options: dict[str, float]) -> str:
    """Pick a key of ``options`` with probability proportional to its weight (insertion order)."""
    keys = list(options)
    return r.choices(keys, weights=[options[k] for k in keys], k=1)[0]
