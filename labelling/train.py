"""Train the study-status model and record whether it beats the rules.

``python -m labelling.train`` (or ``sta eval-labels --train``):

1. Data: the **dev** split of the hand-written report set
   (tests/data/labels, written for the tests, not by the generator); each
   report with a gold ``normal`` or ``abnormal`` is an example. The test split
   is never used for training or for choices.
2. Input: the report's words with every concept mention replaced by
   ``<group:certainty>`` as the rules assert it (labelling/model.py).
3. Model: TF-IDF (word 1-2 grams, sublinear tf) + logistic regression,
   class-balanced (scikit-learn).
4. Choice, on dev only: 5-fold cross-validation compares, on the reports the
   model would decide (no finding positive or uncertain by the rules), the
   status the rules give with the status rules + model give, for a few
   thresholds. The model is ``enabled`` only if its best cross-validated
   accuracy beats the rules' by at least MIN_GAIN.
5. Record: the weights as JSON (labelling/models/status-model.json) and a
   card with version, data, parameters, the cross-validated figures and
   the test-split figures (reported, not used).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import datetime, timezone
from typing import Any

from labelling.evaluate import Report, evaluate, load_reports
from labelling.model import CARD_PATH, MODEL_PATH, StatusModel

NAME = "sta-status-lr"
THRESHOLDS = (0.5, 0.6, 0.7, 0.8)
C = 2.0
# The model is switched on only for a cross-validated gain of at least this
# much status accuracy: with a few dozen undecided dev reports, a smaller
# difference is one report either way, i.e. noise.
MIN_GAIN = 0.02


def gold_status(rep: Report) -> str | None:
    if rep.expect.get("abnormal") in ("positive", "uncertain"):
        return "abnormal"
    if rep.expect.get("normal") == "positive":
        return "normal"
    return None


def pred_status(labels: dict[str, str]) -> str | None:
    if labels.get("abnormal") in ("positive", "uncertain"):
        return "abnormal"
    if labels.get("normal") == "positive":
        return "normal"
    return None


def _examples(reports: list[Report]) -> list[tuple[Report, list[str], bool, str | None]]:
    """(report, model tokens, the model would decide it, rules-only status)."""
    from labelling.labeller import Labeller

    rules = Labeller(use_model=False)
    out = []
    for rep in reports:
        tokens, open_case = rules_view(rules, rep.text, rep.language)
        got = {lab.concept: lab.certainty for lab in rules.label(rep.text, rep.language).labels}
        out.append((rep, tokens, open_case, pred_status(got)))
    return out


def rules_view(rules: Any, text: str, language: str) -> tuple[list[str], bool]:
    """The model's tokens for a report, and whether the model would decide it
    (no finding positive or uncertain by the rules)."""
    from labelling.concepts import FINDING_GROUPS
    from labelling.sections import splitter
    from labelling.text import Document

    doc = Document.of(text)
    sections = splitter().split(doc)
    mentions = rules.mentions(doc, language, sections)
    labels = rules._aggregate(mentions)
    open_case = not any(lab.certainty in ("positive", "uncertain") and
                        (rules.vocab.group(c) in FINDING_GROUPS or c == "malignant") for c, lab in labels.items())
    return rules.status_tokens(doc, mentions, sections), open_case


def fit(tokens: list[list[str]], y: list[int]) -> tuple[Any, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(analyzer=lambda x: x, sublinear_tf=True, norm="l2")
    X = vec.fit_transform(tokens)
    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=2000)
    clf.fit(X, y)
    return vec, clf


def to_model(vec: Any, clf: Any, version: str, threshold: float, enabled: bool) -> StatusModel:
    vocab = {str(k): int(v) for k, v in vec.vocabulary_.items()}
    return StatusModel(NAME, version, vocab, [float(x) for x in vec.idf_], [float(x) for x in clf.coef_[0]],
                       float(clf.intercept_[0]), threshold, enabled)


def hybrid_status(p: float, threshold: float, rules_status: str | None) -> str | None:
    if p >= threshold:
        return "abnormal"
    if rules_status is None and p <= 1 - threshold:
        return "normal"
    return rules_status


def cross_validate(examples: list, folds: int = 5, repeats: int = 10) -> dict[str, Any]:
    """Repeated stratified k-fold on dev: every report is scored ``repeats``
    times by a model that did not see it (one fold split is too noisy with a
    few dozen undecided reports)."""
    from sklearn.model_selection import RepeatedStratifiedKFold

    data = [(e, gold_status(e[0])) for e in examples]
    data = [(e, g) for e, g in data if g is not None]
    y = [1 if g == "abnormal" else 0 for _e, g in data]
    skf = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=13)
    rules_ok = 0
    hybrid_ok = dict.fromkeys(THRESHOLDS, 0)
    n_open = 0
    for train_idx, test_idx in skf.split(data, y):
        vec, clf = fit([data[i][0][1] for i in train_idx], [y[i] for i in train_idx])
        for i in test_idx:
            (rep, tokens, open_case, rules_status), gold = data[i]
            if not open_case:
                continue
            n_open += 1
            rules_ok += rules_status == gold
            p = float(clf.predict_proba(vec.transform([tokens]))[0, 1])
            for t in THRESHOLDS:
                hybrid_ok[t] += hybrid_status(p, t, rules_status) == gold
    best = max(THRESHOLDS, key=lambda t: (hybrid_ok[t], -abs(t - 0.7)))
    return {"folds": folds, "repeats": repeats, "decisions_scored": n_open,
            "rules_accuracy": round(rules_ok / n_open, 4) if n_open else None,
            "hybrid_accuracy": {str(t): round(v / n_open, 4) if n_open else None for t, v in hybrid_ok.items()},
            "best_threshold": best, "min_gain": MIN_GAIN,
            "beats_rules": bool(n_open) and (hybrid_ok[best] - rules_ok) / n_open >= MIN_GAIN}


def train(write: bool = True) -> dict[str, Any]:
    reports = load_reports()
    dev = [r for r in reports if r.split == "dev"]
    test = [r for r in reports if r.split == "test"]
    examples = _examples(dev)
    cv = cross_validate(examples)
    labelled = [(e, gold_status(e[0])) for e in examples if gold_status(e[0])]
    vec, clf = fit([e[1] for e, _g in labelled], [1 if g == "abnormal" else 0 for _e, g in labelled])
    digest = hashlib.sha256(json.dumps([[e[0].id, e[0].text, e[0].expect] for e, _g in labelled],
                                       sort_keys=True).encode()).hexdigest()[:8]
    version = f"1.{digest}"
    model = to_model(vec, clf, version, cv["best_threshold"], bool(cv["beats_rules"]))

    from labelling.labeller import Labeller

    rules_only = Labeller(use_model=False)
    with_model = Labeller(status_model=model, use_model=True)
    figures = {}
    for name, split in (("dev", dev), ("test", test)):
        a, b = evaluate(split, rules_only), evaluate(split, with_model)
        figures[name] = {
            "rules": {"micro_f1": round(a.micro()[2], 4), "assertion_accuracy": round(a.assertion_accuracy, 4),
                      "status_accuracy": _status_accuracy(split, rules_only)},
            "rules+model": {"micro_f1": round(b.micro()[2], 4), "assertion_accuracy": round(b.assertion_accuracy, 4),
                            "status_accuracy": _status_accuracy(split, with_model)},
        }
    import sklearn

    card = {
        "name": NAME, "version": version, "task": "normal vs abnormal when no known finding is positive/uncertain",
        "trained_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "training_data": f"tests/data/labels dev split ({len(labelled)} reports with a gold status)",
        "features": "words + word bigrams of the folded report (request section left out), concept mentions "
                    "replaced by <group:certainty> as the rules assert them; TF-IDF sublinear",
        "estimator": f"sklearn {sklearn.__version__} LogisticRegression(C={C}, class_weight=balanced)",
        "cross_validation_on_dev": cv, "threshold": model.threshold, "enabled": model.enabled,
        "held_out_figures": figures,
        "note": "test-split figures are reported only; nothing was chosen on them",
    }
    if write:
        MODEL_PATH.parent.mkdir(parents=True, exist_ok=True)
        MODEL_PATH.write_text(json.dumps(model.as_json(), sort_keys=True), encoding="utf-8")
        CARD_PATH.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return card


def _status_accuracy(reports: list[Report], labeller: Any) -> float:
    ok = n = 0
    for rep in reports:
        g = gold_status(rep)
        if g is None:
            continue
        n += 1
        got = {lab.concept: lab.certainty for lab in labeller.label(rep.text, rep.language).labels}
        ok += pred_status(got) == g
    return round(ok / n, 4) if n else 1.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m labelling.train", description=__doc__.split("\n")[0])
    p.add_argument("--dry-run", action="store_true", help="evaluate only; do not write the model")
    args = p.parse_args(argv)
    card = train(write=not args.dry_run)
    json.dump(card, sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
