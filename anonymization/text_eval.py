"""Measure the text scrubber: per-type recall and precision, and words kept.

Two measures, on any set of texts with known PHI spans:

* **span recall** -- a PHI value counts as found when every letter/digit of
  it lies inside some finding of the scrubber;
* **surface removal** -- the scrubbed text no longer contains the value's
  surface string (how the held-out check scores ``sta scrub-text`` output);
* **kept words** -- the share of the words outside every annotated span
  that are still in the scrubbed text (damage to the report);
* **precision** per type -- the share of findings that touch an annotated span.

Sources of truth: MEDDOCAN (Spanish clinical cases, brat ``.txt``/``.ann``
pairs; train/dev in ``../shared/data/meddocan``), and the generated es/pt/en
reports of :mod:`synth.text_reports` (which needs Faker, a test-only
dependency, so it is not in this package) and the hand-written Portuguese
and English sets in ``tests/data``.

    .venv/bin/python -m anonymization.text_eval ../shared/data/meddocan/dev [--no-ner] [--json]
    .venv/bin/sta eval-text ../shared/data/meddocan/dev
    .venv/bin/sta eval-text GOLD_DIR --scrubbed OUT_DIR     # score files already scrubbed by `sta scrub-text`

No dependency beyond the product's own.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

@dataclass
class Planted:
    type: str
    start: int
    end: int


@dataclass
class Sample:
    text: str
    language: str
    country: str
    planted: list[Planted] = field(default_factory=list)
    known: list[str] = field(default_factory=list)
    shift: int = -45
    name: str = ""


# Types an annotation may carry that the scrubber must NOT remove (labels
# need them): ages under 90, sex, country, profession, relations ("su
# madre"), other descriptors, and years alone (HIPAA Safe Harbor keeps them).
KEPT_TYPES = {"AGE", "SEX", "COUNTRY", "PROFESSION", "RELATIVE", "OTHER", "YEAR"}

MEDDOCAN_TYPES = {
    "NOMBRE_SUJETO_ASISTENCIA": "PERSON", "NOMBRE_PERSONAL_SANITARIO": "PERSON", "FAMILIARES_SUJETO_ASISTENCIA": "RELATIVE",
    "ID_SUJETO_ASISTENCIA": "ID", "ID_ASEGURAMIENTO": "ID", "ID_CONTACTO_ASISTENCIAL": "ID", "ID_TITULACION_PERSONAL_SANITARIO": "ID",
    "ID_EMPLEO_PERSONAL_SANITARIO": "ID", "IDENTIF_VEHICULOS_NRSERIE_PLACAS": "ID", "IDENTIF_DISPOSITIVOS_NRSERIE": "ID",
    "IDENTIF_BIOMETRICOS": "ID", "DIRECCION_IP": "ID", "URL_WEB": "URL",
    "OTRO_NUMERO_IDENTIF": "ID", "FECHAS": "DATE", "NUMERO_TELEFONO": "PHONE", "NUMERO_FAX": "PHONE", "CORREO_ELECTRONICO": "EMAIL",
    "CALLE": "ADDRESS", "TERRITORIO": "LOCATION", "PAIS": "COUNTRY", "HOSPITAL": "ORGANIZATION", "INSTITUCION": "ORGANIZATION",
    "CENTRO_SALUD": "ORGANIZATION", "EDAD_SUJETO_ASISTENCIA": "AGE", "SEXO_SUJETO_ASISTENCIA": "SEX", "PROFESION": "PROFESSION",
    "OTROS_SUJETO_ASISTENCIA": "OTHER",
}
_YEAR_ALONE = re.compile(r"(?:(?:el\s+|en\s+el\s+|del\s+)?años?\s+|en\s+|de\s+)?(?:1[89]|20)\d\d", re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def covered(p: Planted, text: str, spans: list[tuple[int, int]]) -> bool:
    """Every letter/digit of the planted value lies inside a finding."""
    for i in range(p.start, p.end):
        if text[i].isalnum() and not any(s <= i < e for s, e in spans):
            return False
    return True


def _removed(value: str, scrubbed: str) -> bool:
    """The value's surface string is gone from the scrubbed text (whitespace-insensitive)."""
    v = re.sub(r"\s+", " ", value.strip())
    return v not in re.sub(r"\s+", " ", scrubbed)


def _nonphi_words(sample: Sample) -> Counter:
    mask = bytearray(len(sample.text))
    for p in sample.planted:
        mask[p.start : p.end] = b"\x01" * (p.end - p.start)
    return Counter(m.group() for m in _WORD.finditer(sample.text) if not any(mask[m.start() : m.end()]))


class _Tally:
    """Accumulates the measures over documents."""

    def __init__(self) -> None:
        self.span = defaultdict(lambda: [0, 0])  # key -> [found, n]
        self.surface = defaultdict(lambda: [0, 0])
        self.prec = defaultdict(lambda: [0, 0])  # our type -> [touching gold, findings]
        self.kept = [0, 0]
        self.over = [0, 0]
        self.docs = 0

    def add(self, smp: Sample, scrubbed: str, findings: list | None, key_of) -> None:
        self.docs += 1
        spans = [(f.start, f.end) for f in findings] if findings is not None else None
        for p in smp.planted:
            key = key_of(smp, p)
            if p.type in KEPT_TYPES:
                continue
            if spans is not None:
                h = self.span[key]
                h[1] += 1
                h[0] += covered(p, smp.text, spans)
            s = self.surface[key]
            s[1] += 1
            s[0] += _removed(smp.text[p.start : p.end], scrubbed)
        want = _nonphi_words(smp)
        have = Counter(m.group() for m in _WORD.finditer(scrubbed))
        self.kept[0] += sum(min(c, have[w]) for w, c in want.items())
        self.kept[1] += sum(want.values())
        if findings is not None:
            gold = [(p.start, p.end) for p in smp.planted]
            phi_mask = bytearray(len(smp.text))
            for s_, e_ in gold:
                phi_mask[s_:e_] = b"\x01" * (e_ - s_)
            for f in findings:
                pr = self.prec[f.type]
                pr[1] += 1
                pr[0] += any(s_ < f.end and f.start < e_ for s_, e_ in gold)
                for i in range(f.start, f.end):
                    if smp.text[i].isalnum() and not phi_mask[i]:
                        self.over[0] += 1
            self.over[1] += sum(1 for i, ch in enumerate(smp.text) if ch.isalnum() and not phi_mask[i])

    def result(self, elapsed: float | None) -> dict:
        def table(d):
            return {k: {"recall": round(f / n, 4), "n": n} for k, (f, n) in sorted(d.items())}

        out: dict = {"surface_removed": table(self.surface)}
        if self.span:
            out["per_type"] = table(self.span)
            out["precision"] = {k: {"precision": round(f / n, 4), "findings": n} for k, (f, n) in sorted(self.prec.items())}
            out["overscrub"] = round(self.over[0] / self.over[1], 4) if self.over[1] else 0.0
        out["kept_words"] = round(self.kept[0] / self.kept[1], 4) if self.kept[1] else 1.0
        if elapsed:
            out["reports_per_s"] = round(self.docs / elapsed, 1)
        return out


def score(samples: list[Sample], scrubber, use_known: bool, key: str = "type") -> dict:
    """Scrub every sample and measure. ``key``: "type" (ours), "label" (a sample's own labels) or "language/type"."""

    def key_of(smp: Sample, p: Planted) -> str:
        return f"{smp.language}/{p.type}" if key == "language/type" else p.type

    tally = _Tally()
    by_lang = _Tally()
    t0 = time.perf_counter()
    for smp in samples:
        r = scrubber.scrub(smp.text, smp.language, known_phi=smp.known if use_known else (), date_shift_days=smp.shift)
        tally.add(smp, r.text, r.findings, key_of)
        by_lang.add(smp, r.text, r.findings, lambda s, p: f"{s.language}/{p.type}")
    out = tally.result(time.perf_counter() - t0)
    out["per_language_type"] = by_lang.result(None)["per_type"] if by_lang.span else {}
    return out


# ------------------------------------------------------- hand-marked sets

_MARK = re.compile(r"\{\{(?P<t>[A-Z]+)\|(?P<v>[^{}]*)\}\}")


def read_marked(path: Path, language: str) -> list[Sample]:
    """Documents with PHI marked inline as ``{{TYPE|value}}``, separated by lines "=====" ("#" lines are comments)."""
    raw = "\n".join(l for l in Path(path).read_text(encoding="utf-8").splitlines() if not l.startswith("#"))
    out = []
    for i, doc in enumerate(re.split(r"\n=====\n", raw)):
        parts, planted, pos, last = [], [], 0, 0
        for m in _MARK.finditer(doc):
            parts.append(doc[last : m.start()])
            pos += m.start() - last
            planted.append(Planted(m.group("t"), pos, pos + len(m.group("v"))))
            parts.append(m.group("v"))
            pos += len(m.group("v"))
            last = m.end()
        parts.append(doc[last:])
        out.append(Sample("".join(parts).strip("\n") if False else "".join(parts), language, language, planted, shift=-400, name=f"{Path(path).stem}#{i}"))
    return out


# ---------------------------------------------------------------- MEDDOCAN


def read_brat(txt: Path, typed: bool = False) -> Sample:
    """One brat .txt/.ann pair. Planted types are MEDDOCAN's labels, or ours when ``typed``."""
    text = txt.read_text(encoding="utf-8")
    planted = []
    ann = txt.with_suffix(".ann")
    for line in ann.read_text(encoding="utf-8").splitlines() if ann.exists() else []:
        if not line.startswith("T"):
            continue
        _, meta, _ = line.split("\t", 2)
        label, *offs = meta.replace(";", " ").split()
        s, e = int(offs[0]), int(offs[-1])
        typ = MEDDOCAN_TYPES.get(label, "OTHER")
        if typ == "DATE" and _YEAR_ALONE.fullmatch(text[s:e].strip()):
            typ, label = "YEAR", "FECHAS_AÑO"  # a year alone is not PHI (HIPAA Safe Harbor keeps it)
        if typ in KEPT_TYPES:
            label = label if typ != "YEAR" else label
        planted.append(Planted(typ if typed or typ in KEPT_TYPES else label, s, e))
    return Sample(text, "es", "es", planted, shift=0, name=txt.name)


def load_meddocan(directory: Path, limit: int | None = None, typed: bool = True) -> list[Sample]:
    """brat .txt/.ann pairs -> samples (types mapped to ours unless ``typed`` is False)."""
    return [read_brat(t, typed) for t in sorted(Path(directory).glob("*.txt"))[:limit]]


def evaluate_dir(gold_dir: Path, scrubber=None, scrubbed_dir: Path | None = None, limit: int | None = None, language: str = "es") -> dict:
    """Per MEDDOCAN label: span recall and precision (when scrubbing here), surface removal, kept words.

    With ``scrubbed_dir``, the files there (same names, e.g. written by ``sta
    scrub-text``) are scored instead of scrubbing here.
    """
    samples = load_meddocan(gold_dir, limit, typed=False)
    tally = _Tally()
    c0 = time.process_time()
    t0 = time.perf_counter()
    for smp in samples:
        if scrubbed_dir is not None:
            out = Path(scrubbed_dir) / smp.name
            tally.add(smp, out.read_text(encoding="utf-8") if out.exists() else smp.text, None, lambda s, p: p.type)
        else:
            r = scrubber.scrub(smp.text, language)
            tally.add(smp, r.text, r.findings, lambda s, p: p.type)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    res = tally.result(elapsed if scrubbed_dir is None else None)
    res["n_docs"] = len(samples)
    if scrubbed_dir is None and cpu > 0:
        # CPU time of this process: the figure that does not depend on what else the machine runs.
        res["reports_per_cpu_s"] = round(len(samples) / cpu, 1)
    return res


def summary_lines(res: dict, min_n: int = 20) -> list[str]:
    """A human table: label, n, span recall, surface removal; then precision and kept words."""
    lines = [f"{'label':36} {'n':>5} {'recall':>7} {'removed':>8}"]
    span = res.get("per_type", {})
    for label, v in sorted(res["surface_removed"].items(), key=lambda kv: -kv[1]["n"]):
        rec = span.get(label, {}).get("recall")
        flag = "" if v["n"] < min_n or min(v["recall"], rec if rec is not None else 1) >= 0.99 else "  <0.99"
        lines.append(f"{label:36} {v['n']:>5} {'' if rec is None else f'{rec:.4f}':>7} {v['recall']:>8.4f}{flag}")
    if res.get("precision"):
        lines.append("precision: " + ", ".join(f"{k} {v['precision']:.3f} ({v['findings']})" for k, v in res["precision"].items()))
    lines.append(f"kept non-PHI words: {res['kept_words']:.4f}" + (f"   reports/s: {res['reports_per_s']}" if res.get("reports_per_s") else "")
                 + (f" (per CPU-second: {res['reports_per_cpu_s']})" if res.get("reports_per_cpu_s") else ""))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Per-type recall/precision of the text scrubber on a MEDDOCAN (brat) folder")
    ap.add_argument("gold", type=Path, nargs="?", default=None, help="brat folder (default ../shared/data/meddocan/dev)")
    ap.add_argument("--scrubbed", type=Path, default=None, help="score these already-scrubbed .txt files instead of scrubbing")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--lang", default="es")
    ap.add_argument("--no-ner", action="store_true", help="patterns only, even with a NER model")
    ap.add_argument("--ner-model", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--marked", type=Path, default=None, help="a hand-marked {{TYPE|value}} file instead of a brat folder (with --lang)")
    args = ap.parse_args(argv)
    if args.marked is not None:
        from anonymization.text_phi import TextScrubber

        scrubber = TextScrubber([args.lang], ner_model=args.ner_model, use_ner=not args.no_ner)
        res = score(read_marked(args.marked, args.lang), scrubber, False)
        res["surface_removed"] = res["surface_removed"]
        print(json.dumps(res, indent=1, ensure_ascii=False) if args.json else "\n".join(summary_lines(res, min_n=1)))
        return 0
    gold = args.gold
    if gold is None:
        from anonymization.ner.train import find_data

        gold = find_data(None) / "dev"
    if not gold.is_dir():
        print(f"text_eval: {gold} is not a directory", file=sys.stderr)
        return 2
    scrubber = None
    if args.scrubbed is None:
        from anonymization.text_phi import TextScrubber

        scrubber = TextScrubber([args.lang], ner_model=args.ner_model, use_ner=not args.no_ner)
    res = evaluate_dir(gold, scrubber, args.scrubbed, args.limit, args.lang)
    if scrubber is not None:
        res["ner_model"] = str(scrubber.ner_model_path) if scrubber.ner_model_path else None
    if args.json:
        print(json.dumps(res, indent=1, ensure_ascii=False))
    else:
        print("\n".join(summary_lines(res)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
