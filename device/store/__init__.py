"""Durable storage on the unit: the hash-chained journal in SQLite."""
