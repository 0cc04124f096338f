"""The observers' verifier page: its source (``src/``), its build (``build.py``) and a fake camera for its tests.

See docs/verifier.md. Not installed with the wheel: the receiver carries the built page in ``receiver/static/``.
"""
