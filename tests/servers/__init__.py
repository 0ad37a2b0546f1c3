"""Real servers on loopback for the connector tests and the fetch benchmark.

Plain modules: each exposes a server class usable without pytest (the
benchmark starts them too) and a pytest fixture. Test modules import the
fixtures they need explicitly.
"""
