"""A few lines on a partner's published labels, for ``make demo`` and operators.

Per-cluster study counts, labels by certainty, and a handful of labels with
the evidence text they were read from (scrubbed report text, no identifiers).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any


def summarize(labels: list[dict[str, Any]], characteristics: list[dict[str, Any]], examples: int = 4) -> list[str]:
    clusters = Counter(r["value"] for r in characteristics if r["field"] == "cluster")
    certainty = Counter(r["certainty"] for r in labels)
    lines = [
        "clusters: " + (", ".join(f"{c} {n}" for c, n in clusters.most_common()) or "none"),
        "labels: " + (", ".join(f"{c} {n}" for c, n in certainty.most_common()) or "none"),
    ]
    shown: set[tuple[str, str]] = set()
    picked = []
    # One example per certainty first, then the most confident positives.
    for r in sorted(labels, key=lambda r: (r["certainty"] == "positive", -r["confidence"])):
        key = (r["certainty"], r["concept"])
        if r.get("evidence_text") and key not in shown and len(picked) < examples and \
                (r["certainty"] not in {k for k, _c in shown} or len(picked) >= 3):
            shown.add(key)
            picked.append(r)
    for r in picked:
        lines.append(f"  {r['concept']} ({r['certainty']}, {r['confidence']:.2f}, {r['source']}, {r['cluster']}): "
                     f"\u00ab{r['evidence_text']}\u00bb in {r['evidence_section']}")
    return lines


def published_summary(parquet_dir: Path, examples: int = 4) -> list[str]:
    """``summarize`` of a partner's published Parquet."""
    from foundation.schema import TABLES
    from transforms.parquet_store import read_table

    labels = read_table(parquet_dir, "labels", TABLES["labels"]).to_pylist()
    chars = read_table(parquet_dir, "characteristics", TABLES["characteristics"]).to_pylist()
    return summarize(labels, chars, examples)
