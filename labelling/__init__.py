"""Report labelling and study characterization (issue 13). Plain Python: no Airflow, no ``sta``.

- ``label_report(text, language=None, cluster=None)``: concepts with certainty
  (positive/negative/uncertain/historical/family), confidence, source
  (rule/model), model name and version, evidence spans (labelling.labeller).
- ``match_keyword(word)``: the concept ids a search keyword names in es/pt/en.
- ``infer_region(...)`` / ``clusters().route(...)``: body region with a
  confidence and the labelling cluster of a study.
- ``characterize(StudyFacts(...), labels)``: demographics, image attributes,
  clinical context, each with source and confidence.

Data: include/labelling/ (concepts, cues, sections, body regions, clusters,
characterization). Evaluation: labelling.evaluate, ``sta eval-labels``.
"""

from labelling.concepts import concept_ids, match_keyword
from labelling.labeller import Label, ReportLabels, label_report

__all__ = ["Label", "ReportLabels", "concept_ids", "label_report", "match_keyword"]
