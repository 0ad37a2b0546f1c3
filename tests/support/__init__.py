"""Test and benchmark support: real servers on loopback and helpers.

Plain modules usable without pytest (the benchmarks start the servers too).
The session fixtures that start them (``sftp_server``, ``s3_server``,
``drive_server``, ``dropbox_server``) are registered once in
``tests/conftest.py``; a test asks for one by naming it as an argument.
"""
