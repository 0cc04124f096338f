"""The reference CEC receiver: verifies, stores and publishes the signed records of every station.

Modules: ``registry`` (enrolled device keys), ``ingest`` (the verification
pipeline), ``storage`` (SQLite or PostgreSQL), ``merkle`` and ``loghead`` (the
public RFC 6962 log), ``status`` (what records say about a station),
``service`` (the composition root), ``app``/``views_*`` (Flask), ``cli``
(``pollbox-receiver``). See docs/receiver.md.
"""
