"""``python -m pipeline PARTNER [--run-id ID] [--approve]``: one partner run without Airflow (see runner.py)."""

from pipeline.runner import main

raise SystemExit(main())
