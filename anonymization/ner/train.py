"""Train the optional Spanish PHI NER model from MEDDOCAN (brat) with spaCy.

The scrubber works without it (patterns, headers, known values); with it,
names, places and institutions in free prose are found far better (see the
README figures). The model is never downloaded: it is trained here from data
the project can reach -- ``../shared/data/meddocan`` (CC BY 4.0, Marimon et
al. 2019) -- and written to ``models/ner_es`` (git-ignored, ~6 MB), where
:class:`anonymization.text_phi.TextScrubber` picks it up (or set
``STA_NER_MODEL``).

    .venv/bin/python -m anonymization.ner.train                     # full: ~8-10 min on 2 cores
    .venv/bin/python -m anonymization.ner.train --max-docs 20 --max-steps 20 --out /tmp/ner   # smoke

The architecture is spaCy's CPU "efficiency" NER (hash embeddings + CNN, no
pretrained vectors), so training needs nothing but the corpus.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent.parent
DEFAULT_DATA = PROJECT.parent / "shared" / "data" / "meddocan"
DEFAULT_OUT = PROJECT / "models" / "ner_es"


def find_data(explicit: Path | None = None) -> Path:
    """The MEDDOCAN folder: argument, $STA_MEDDOCAN, or ../shared/data/meddocan."""
    for cand in (explicit, Path(os.environ["STA_MEDDOCAN"]) if os.environ.get("STA_MEDDOCAN") else None, DEFAULT_DATA, Path("/work/shared/data/meddocan")):
        if cand is not None and (cand / "train").is_dir():
            return cand
    raise FileNotFoundError("MEDDOCAN not found: pass --data or set STA_MEDDOCAN (folder with train/ and dev/)")


def brat_docs(folder: Path, limit: int | None = None):
    """(text, [(start, end, label)]) for each .txt/.ann pair of a brat folder."""
    for txt in sorted(folder.glob("*.txt"))[:limit]:
        ann = txt.with_suffix(".ann")
        if not ann.exists():
            continue
        ents = []
        for line in ann.read_text(encoding="utf-8").splitlines():
            if not line.startswith("T"):
                continue
            _, meta, _ = line.split("\t", 2)
            label, *offs = meta.replace(";", " ").split()
            ents.append((int(offs[0]), int(offs[-1]), label))
        yield txt.read_text(encoding="utf-8"), ents


def to_docbin(nlp, docs) -> "object":
    """spaCy DocBin with entity spans aligned to tokens (overlaps dropped)."""
    from spacy.tokens import DocBin
    from spacy.util import filter_spans

    db = DocBin()
    for text, ents in docs:
        doc = nlp.make_doc(text)
        spans = []
        for s, e, label in ents:
            span = doc.char_span(s, e, label=label, alignment_mode="expand")
            if span is not None:
                spans.append(span)
        doc.ents = filter_spans(spans)
        db.add(doc)
    return db


def build_config(max_steps: int, max_epochs: int, patience: int, eval_frequency: int):
    from spacy.cli.init_config import init_config

    cfg = init_config(lang="es", pipeline=["ner"], optimize="efficiency", gpu=False, pretraining=False)
    cfg["training"]["max_steps"] = max_steps
    cfg["training"]["max_epochs"] = max_epochs
    cfg["training"]["patience"] = patience
    cfg["training"]["eval_frequency"] = eval_frequency
    cfg["nlp"]["batch_size"] = 64
    return cfg


def train(
    data: Path,
    out: Path,
    max_docs: int | None = None,
    max_steps: int = 0,
    max_epochs: int = 12,
    patience: int = 1600,
    eval_frequency: int = 200,
) -> dict:
    """Train and write ``out/model-best``; returns the scores from its meta.json."""
    import spacy
    from spacy.cli.train import train as spacy_train

    nlp = spacy.blank("es")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sta-ner-") as tmp:
        tmpd = Path(tmp)
        to_docbin(nlp, brat_docs(data / "train", max_docs)).to_disk(tmpd / "train.spacy")
        dev_limit = None if max_docs is None else max(5, max_docs // 2)
        to_docbin(nlp, brat_docs(data / "dev", dev_limit)).to_disk(tmpd / "dev.spacy")
        cfg = build_config(max_steps, max_epochs, patience, eval_frequency)
        cfg_path = tmpd / "config.cfg"
        cfg.to_disk(cfg_path)
        t0 = time.perf_counter()
        spacy_train(
            cfg_path,
            out,
            use_gpu=-1,
            overrides={"paths.train": str(tmpd / "train.spacy"), "paths.dev": str(tmpd / "dev.spacy")},
        )
        elapsed = time.perf_counter() - t0
    meta = json.loads((out / "model-best" / "meta.json").read_text())
    perf = meta.get("performance", {})
    # Keep only the best model: the last one is the same size and unused.
    last = out / "model-last"
    if last.exists():
        import shutil

        shutil.rmtree(last)
    return {"seconds": round(elapsed, 1), "ents_f": perf.get("ents_f"), "ents_p": perf.get("ents_p"), "ents_r": perf.get("ents_r"), "path": str(out / "model-best")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train the Spanish PHI NER model from MEDDOCAN")
    ap.add_argument("--data", type=Path, default=None, help="MEDDOCAN folder with train/ and dev/")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--max-docs", type=int, default=None, help="train on the first N documents only (smoke runs)")
    ap.add_argument("--max-steps", type=int, default=0, help="0 = until max-epochs/patience")
    ap.add_argument("--max-epochs", type=int, default=12)
    ap.add_argument("--eval-frequency", type=int, default=200)
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    result = train(find_data(args.data), args.out, args.max_docs, args.max_steps, args.max_epochs, eval_frequency=args.eval_frequency)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
