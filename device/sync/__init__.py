"""Sync between the units of one station over the station LAN: signed check-in records pulled by seq.

``units.py`` reads the package's list of units and their enrolled keys; ``wire.py`` is the record and
message format (each unit's Ed25519 or TPM-held P-256 signatures over canonical bytes); ``log.py``
holds what this unit serves;
``server.py`` answers pulls; ``client.py`` is the thread that pulls and posts what it got to the owner.
``docs/units.md`` describes the design.
"""
