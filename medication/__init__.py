"""Medication-order checks (issue 17, seed 004): plain Python, no Airflow, no ``sta``.

An order (JSON or a dictated sentence in Spanish/Portuguese) is tokenized on
arrival, its drug resolved against the catalogue in ``include/medication``,
its dose normalised, and it is checked against absolute limits, the patient's
own history and the population (a Random Cut Forest per drug). Everything is
recorded, with reasons, in a DuckDB order store.

Modules: ``catalogue`` (reference data), ``units`` (dose normalisation),
``resolve`` (drug names), ``spoken`` (dictated orders), ``order`` (the order
model and tokenization), ``checks`` (validation, dose range, history),
``population`` (the forest), ``engine`` (one decision per order), ``store``
(DuckDB), ``dashboard`` (trends and plots), ``healthplan`` (the plan API's
wire format), ``notify`` (e-mail texts).
"""
