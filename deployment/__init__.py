"""Deployment: how the platform's processes are laid out (compose file, worker identity).

Plain Python, no Airflow import: ``sta deploy compose`` and the distributed
tests call it.
"""
