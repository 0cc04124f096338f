"""The public log's signed tree head, inclusion proofs, and their offline check.

A **tree head** is a signed form, exactly like a record or receipt
(``<86-char base64url Ed25519 signature> <canonical JSON>``), of::

    {"at": "...Z", "key": "<receiver key id>", "root": "<64 hex>", "size": n, "type": "tree_head", "v": 1}

signed by the receiver key. The **leaf** of a record is its exact record
bytes (the JSON after the signature), hashed as RFC 6962 leaves. An
**inclusion proof** is ``{"leaf_index", "tree_size", "audit_path": [hex...]}``.

Wiring: the API (``views_api.py``) calls ``sign_tree_head`` and
``proof_json``; ``cli.py verify-inclusion`` calls ``check_inclusion``, which
needs nothing but the record line, the proof, the head and the receiver's
public key.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from device.core.events import canonical
from device.upstream.envelope import VERSION, EnvelopeError, b64u, iso_utc, key_id, parse_line, unb64u
from receiver import merkle


class LogError(Exception):
    """A tree head or proof is malformed or does not verify; the message says which."""


def sign_tree_head(key: Ed25519PrivateKey, size: int, root: bytes, at: float) -> dict[str, Any]:
    """The tree head as served: the signed line plus its fields for convenience."""
    fields = {"v": VERSION, "type": "tree_head", "size": size, "root": root.hex(),
              "key": key_id(key.public_key()), "at": iso_utc(at)}
    data = canonical(fields)
    return {"tree_head": f"{b64u(key.sign(data))} {data.decode('utf-8')}", **fields}


def proof_json(index: int, size: int, path: list[bytes], leaf_hash: bytes) -> dict[str, Any]:
    return {"leaf_index": index, "tree_size": size, "leaf_hash": leaf_hash.hex(),
            "audit_path": [node.hex() for node in path]}


def verify_tree_head(line: str, public: Ed25519PublicKey) -> tuple[int, bytes]:
    """(size, root) of a signed tree head, after checking its signature."""
    head, sep, rest = line.strip().partition(" ")
    if not sep:
        raise LogError("a tree head is a signature, a space, then JSON")
    try:
        public.verify(unb64u(head), rest.encode("utf-8"))
    except (InvalidSignature, EnvelopeError):
        raise LogError("the tree head's signature does not verify with the receiver key given") from None
    fields = json.loads(rest)
    if fields.get("type") != "tree_head" or not isinstance(fields.get("size"), int):
        raise LogError("the signed line is not a tree head")
    return fields["size"], _hex(fields.get("root"), "root")


def _hex(value: Any, name: str) -> bytes:
    try:
        raw = bytes.fromhex(str(value))
    except ValueError:
        raise LogError(f"{name} is not hexadecimal") from None
    if len(raw) != 32:
        raise LogError(f"{name} is not a 32-byte SHA-256 hash")
    return raw


def check_inclusion(record_line: str, proof: dict[str, Any], head: dict[str, Any], public: Ed25519PublicKey) -> int:
    """Check that the record is in the log the head commits to; returns its leaf index. Raises LogError."""
    try:
        record = parse_line(record_line.strip())
    except EnvelopeError as exc:
        raise LogError(f"the record line is not a signed record: {exc}") from None
    size, root = verify_tree_head(str(head.get("tree_head", "")), public)
    index, proof_size, path = _proof_fields(proof)
    if proof_size != size:
        raise LogError(f"the proof is for a tree of {proof_size} leaves, the head for {size}; fetch both again")
    try:
        merkle.verify_inclusion(merkle.leaf_hash(record.data), index, size, path, root)
    except merkle.ProofError as exc:
        raise LogError(f"the record is not proven to be in the log: {exc}") from None
    return index


def _proof_fields(proof: dict[str, Any]) -> tuple[int, int, list[bytes]]:
    index, size, path = proof.get("leaf_index"), proof.get("tree_size"), proof.get("audit_path")
    if not isinstance(index, int) or not isinstance(size, int) or not isinstance(path, list):
        raise LogError("a proof has integer leaf_index and tree_size and a list audit_path")
    return index, size, [_hex(node, "an audit path entry") for node in path]
