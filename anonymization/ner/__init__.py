"""Optional Spanish NER for PHI, trained by this project from MEDDOCAN (see train.py)."""
