"""The receiver database by subject, over one connection layer; joined in ``receiver/storage.py``."""
