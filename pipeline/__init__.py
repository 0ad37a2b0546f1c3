"""The partner ingestion pipeline, one module per task of ``ingest_<partner>``, no Airflow in it.

Each stage is a function ``run(ctx, ...)`` taking a :class:`~pipeline.context.RunContext`
(the partner's resolved configuration, its root and the run's :class:`~foundation.paths.RunFolder`),
so a stage never reloads configuration by id. Operators (``operators/partner_tasks.py``) resolve
the context once per task and call one stage; a shell can do the same::

    from pipeline.context import RunContext
    from pipeline import classify
    classify.run(RunContext.resolve("clinica_andes_co", "manual_1"))

Stages talk through files in the run folder, never through large XComs: a batch is a manifest, a
result is a Parquet file. Every pulled file ends as exactly one outcome line (published,
quarantined or rejected); :mod:`pipeline.ledger` refuses to publish if they don't add up.

pull -> classify -> deidentify[batch] -> reports[batch] -> tables -> validate -> publish -> cleanup
"""
