"""Simulated hardware for development, demos and tests. Never loaded unless named in config."""
