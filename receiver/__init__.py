"""The reference CEC receiver: verifies, stores and publishes the signed records of every station.

Modules: ``registry`` (enrolled device keys), ``ingest`` (the verification
pipeline), ``limits`` (how many rejections are written down), ``storage``
over ``store/`` (SQLite or PostgreSQL, one module per subject), ``status``
(what records say about a station), ``service`` (the composition root),
``current``/``app``/``views_*`` (Flask), ``cli`` (``pollbox-receiver``). The
wire format, the Merkle log and tree heads are the shared ``protocol``
package. See docs/receiver.md.
"""
