"""The wire format between a pollbox unit and the CEC receiver, shared by both ends.

``docs/protocol.md`` specifies it for outside verifiers; this package is its one
implementation. ``device`` (the station) and ``receiver`` (the CEC) both import
it and never each other (``tests/test_import_boundary.py``). Modules:

- ``canonical``: canonical JSON bytes;
- ``keys``: Ed25519 public keys as base64 and their key ids;
- ``envelope``: the signed record, its exact bytes, signature and fields;
- ``schema``: the fields of each record type's body, and the check of a body;
- ``chain``: the ``prev`` hash chain of a station's records;
- ``batch``: records joined into one request body, and its limits;
- ``receipts``: the receiver's signed acknowledgement;
- ``export``: the ``pollbox-export/1`` file carried on a USB stick;
- ``merkle``: RFC 6962 hashing, proofs and their verification;
- ``treehead``: the receiver's signed tree head and the offline inclusion check.

Everything here is computation over bytes: no files, sockets or clocks (times
come in as arguments).
"""
