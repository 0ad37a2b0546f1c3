"""Report text scrubbing: the default scrubber (NER + patterns) beside the pattern-only one.

``.venv/bin/python bench/bench_text.py [--docs 100] [--generated 120]``

Both scrubbers are built once (as ``sta scrub-text`` and the pipeline's
reports stage do) and run over the same texts in the same process:

1. MEDDOCAN dev (Spanish clinical cases, ``../shared/data/meddocan/dev``):
   reports/s, per-type surface removal of the identifying types, kept non-PHI
   words -- the figures the held-out check reads on the test split;
2. the generated es/pt/en radiology reports (``synth.text_reports``): reports/s
   and recall per type.

Start-up (loading the NER model, compiling recognizers, the gazetteer) is
printed apart: it is paid once per process.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))


def _build(use_ner: bool):
    from anonymization.text_phi import TextScrubber

    t = time.perf_counter()
    s = TextScrubber(use_ner=use_ner)
    s.scrub("Paciente: Ana Soto. Vive en Madrid.", "es")  # gazetteer, lexicon and model loaded
    return s, time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100, help="MEDDOCAN dev documents")
    ap.add_argument("--generated", type=int, default=120, help="generated es/pt/en reports")
    args = ap.parse_args(argv)
    from anonymization.ner.train import find_data
    from anonymization.text_eval import evaluate_dir, score

    rows = []
    for label, use_ner in (("NER + patterns (default)", True), ("patterns only (baseline)", False)):
        scrubber, startup = _build(use_ner)
        row = {"name": label, "startup_s": round(startup, 2)}
        try:
            dev = find_data(None) / "dev"
            res = evaluate_dir(dev, scrubber, limit=args.docs)
            ident = {k: v for k, v in res["surface_removed"].items() if v["n"] >= 5}
            row["meddocan_reports_per_s"] = res["reports_per_s"]
            row["meddocan_reports_per_cpu_s"] = res.get("reports_per_cpu_s")
            row["meddocan_min_removed"] = min(v["recall"] for v in ident.values())
            row["meddocan_worst"] = min(ident, key=lambda k: ident[k]["recall"])
            row["meddocan_kept_words"] = res["kept_words"]
        except FileNotFoundError:
            row["meddocan_reports_per_s"] = None
        from synth.text_reports import generate

        gen = score(generate(args.generated, seed=3), scrubber, use_known=False)
        row["generated_reports_per_s"] = gen["reports_per_s"]
        row["generated_recall"] = {k: v["recall"] for k, v in gen["per_type"].items()}
        row["generated_kept_words"] = gen["kept_words"]
        rows.append(row)
    print(f"{'scrubber':28} {'start s':>8} {'MEDDOCAN rep/s':>15} {'rep/CPU-s':>10} {'min removed':>12} {'kept words':>11} {'generated rep/s':>16}")
    for r in rows:
        print(
            f"{r['name']:28} {r['startup_s']:>8} {r.get('meddocan_reports_per_s') or '-':>15} {r.get('meddocan_reports_per_cpu_s') or '-':>10} "
            f"{r.get('meddocan_min_removed', '-'):>12} {r.get('meddocan_kept_words', '-'):>11} {r['generated_reports_per_s']:>16}"
        )
    for r in rows:
        print(f"{r['name']}: MEDDOCAN worst type {r.get('meddocan_worst')}; generated recall {r['generated_recall']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
