"""Train the Spanish PHI NER model shipped with the scrubber, from MEDDOCAN (brat), with spaCy.

The model is never downloaded: it is trained here from data the project can
reach -- ``../shared/data/meddocan`` (CC BY 4.0, Marimon et al. 2019): the
*train* split to learn, the *dev* split to choose the best checkpoint -- and
written to ``anonymization/ner/model`` (shipped in the repository, a few MB,
see ``SOURCES.md`` beside it), where
:class:`anonymization.text_phi.TextScrubber` picks it up (or set
``STA_NER_MODEL``).

    nice .venv/bin/python -m anonymization.ner.train                 # full run (``make ner``)
    .venv/bin/python -m anonymization.ner.train --max-docs 20 --max-steps 20 --out /tmp/ner   # smoke

Choices, all for recall (a missed name is a leak, an extra mask is a lost word):

* the tok2vec is spaCy's CPU CNN with hash embeddings of the normalised
  form, prefix, suffix and *shape* of every token (character features: no
  pretrained vectors exist here), wider than spaCy's "efficiency" default;
* the checkpoint kept is the one with the best ``0.3 F1 + 0.7 recall`` on
  dev, not the best F1;
* MEDDOCAN's fine labels are kept (the scrubber maps them to its types), so
  a confusion between two PHI labels never costs a span.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent.parent
DEFAULT_DATA = PROJECT.parent / "shared" / "data" / "meddocan"
#: Where the shipped model lives (read by text_phi.DEFAULT_NER_MODEL).
DEFAULT_OUT = Path(__file__).resolve().parent / "model"


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


#: The corpus-derived Spanish clinical word list (see anonymization/recognizers/lexicon.py).
LEXICON = Path(__file__).resolve().parent.parent / "data" / "clinical_words_es.txt"


def write_lexicon(data: Path, out: Path = LEXICON, min_count: int = 2) -> int:
    """Words written in lower case >= ``min_count`` times outside PHI annotations of the train split."""
    import re
    from collections import Counter

    cnt: Counter = Counter()
    for text, ents in brat_docs(data / "train"):
        mask = bytearray(len(text))
        for s, e, _ in ents:
            mask[s:e] = b"\x01" * (e - s)
        for m in re.finditer(r"[^\W\d_]{3,}", text):
            if m.group().islower() and not any(mask[m.start() : m.end()]):
                cnt[m.group()] += 1
    words = sorted(w for w, c in cnt.items() if c >= min_count)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(words) + "\n", encoding="utf-8")
    return len(words)


def build_config(max_steps: int, max_epochs: int, patience: int, eval_frequency: int, width: int = 128):
    from spacy.cli.init_config import init_config

    cfg = init_config(lang="es", pipeline=["ner"], optimize="efficiency", gpu=False, pretraining=False)
    t = cfg["training"]
    t["max_steps"] = max_steps
    t["max_epochs"] = max_epochs
    t["patience"] = patience
    t["eval_frequency"] = eval_frequency
    t["dropout"] = 0.15
    t["score_weights"] = {"ents_f": 0.3, "ents_p": 0.0, "ents_r": 0.7, "ents_per_type": None}
    cfg["nlp"]["batch_size"] = 64
    tok = cfg["components"]["tok2vec"]["model"]
    tok["encode"]["width"] = width
    tok["embed"]["attrs"] = ["NORM", "PREFIX", "SUFFIX", "SHAPE"]
    tok["embed"]["rows"] = [8000, 2000, 4000, 1000]
    cfg["components"]["ner"]["model"]["hidden_width"] = 96
    return cfg


def train(
    data: Path,
    out: Path,
    max_docs: int | None = None,
    max_steps: int = 0,
    max_epochs: int = 30,
    patience: int = 3000,
    eval_frequency: int = 250,
    workdir: Path | None = None,
    width: int = 128,
) -> dict:
    """Train, copy the best checkpoint to ``out``; returns its dev scores."""
    import spacy
    from spacy.cli.train import train as spacy_train

    nlp = spacy.blank("es")
    with tempfile.TemporaryDirectory(prefix="sta-ner-") as tmp:
        tmpd = Path(tmp)
        run = workdir or tmpd / "run"
        to_docbin(nlp, brat_docs(data / "train", max_docs)).to_disk(tmpd / "train.spacy")
        dev_limit = None if max_docs is None else max(5, max_docs // 2)
        to_docbin(nlp, brat_docs(data / "dev", dev_limit)).to_disk(tmpd / "dev.spacy")
        cfg = build_config(max_steps, max_epochs, patience, eval_frequency, width)
        cfg_path = tmpd / "config.cfg"
        cfg.to_disk(cfg_path)
        t0 = time.perf_counter()
        spacy_train(
            cfg_path,
            run,
            use_gpu=-1,
            overrides={"paths.train": str(tmpd / "train.spacy"), "paths.dev": str(tmpd / "dev.spacy")},
        )
        elapsed = time.perf_counter() - t0
        best = run / "model-best"
        meta = json.loads((best / "meta.json").read_text())
        if out.exists():
            for child in out.iterdir():
                if child.name not in ("SOURCES.md", "LICENSE"):
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        out.mkdir(parents=True, exist_ok=True)
        for child in best.iterdir():
            (shutil.copytree if child.is_dir() else shutil.copy2)(child, out / child.name)
    _forget_training_paths(out / "config.cfg")
    perf = meta.get("performance", {})
    return {"seconds": round(elapsed, 1), "ents_f": perf.get("ents_f"), "ents_p": perf.get("ents_p"), "ents_r": perf.get("ents_r"), "path": str(out)}


def _forget_training_paths(cfg: Path) -> None:
    """The shipped config names no temporary training files (they are gone; paths.train/dev = null)."""
    import re

    if cfg.exists():
        text = cfg.read_text(encoding="utf-8")
        text = re.sub(r'(?m)^(train|dev) = ".*"$', r"\1 = null", text)
        cfg.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train the Spanish PHI NER model from MEDDOCAN")
    ap.add_argument("--data", type=Path, default=None, help="MEDDOCAN folder with train/ and dev/")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the best model is written")
    ap.add_argument("--workdir", type=Path, default=None, help="keep spaCy's checkpoints here (default: a temp dir)")
    ap.add_argument("--max-docs", type=int, default=None, help="train on the first N documents only (smoke runs)")
    ap.add_argument("--max-steps", type=int, default=0, help="0 = until max-epochs/patience")
    ap.add_argument("--max-epochs", type=int, default=30)
    ap.add_argument("--patience", type=int, default=3000, help="steps without a better dev score before stopping")
    ap.add_argument("--eval-frequency", type=int, default=250)
    ap.add_argument("--width", type=int, default=128, help="tok2vec width")
    ap.add_argument("--lexicon-only", action="store_true", help="only rewrite anonymization/data/clinical_words_es.txt")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    n = write_lexicon(find_data(args.data))
    if args.lexicon_only:
        print(json.dumps({"lexicon_words": n, "path": str(LEXICON)}))
        return 0
    result = train(
        find_data(args.data), args.out, args.max_docs, args.max_steps, args.max_epochs,
        patience=args.patience, eval_frequency=args.eval_frequency, workdir=args.workdir, width=args.width,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
