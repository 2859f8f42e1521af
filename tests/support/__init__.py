"""Helpers shared by the tests, the benches and scripts/make_demo.py (not fixtures: those
are in tests/conftest.py)."""
