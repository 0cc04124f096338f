"""The public log's signed tree head, inclusion proofs, and their offline check.

A **tree head** is a signed form, exactly like a record or receipt
(``<86-char base64url Ed25519 signature> <canonical JSON>``), of::

    {"at": "...Z", "key": "<receiver key id>", "root": "<64 hex>", "size": n, "type": "tree_head", "v": 1}

signed by the receiver key. Only the signed line counts: the API repeats its
fields beside it for convenience, and a verifier reads them from the line
(``verify_tree_head``), never from the copies. The **leaf** of a record is its
exact record bytes (the JSON after the signature), hashed as RFC 6962 leaves.
An **inclusion proof** is ``{"leaf_index", "tree_size", "leaf_hash",
"audit_path": [hex...]}``.

``check_inclusion`` needs nothing but the record line, the proof, the head and
the receiver's public key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol import merkle
from protocol.envelope import (
    VERSION,
    EnvelopeError,
    is_int,
    is_utc_time,
    iso_utc,
    load_json,
    parse_line,
    sign_fields,
    split_signed,
)
from protocol.errors import UserError
from protocol.keys import key_id


class LogError(UserError):
    """A tree head or proof is malformed or does not verify; the message says which."""


@dataclass(frozen=True)
class TreeHead:
    """What a verified tree head's signature covers."""

    size: int
    root: bytes
    at: str
    key: str


def tree_head_fields(key: Ed25519PrivateKey, size: int, root: bytes, at: float) -> dict[str, Any]:
    return {"v": VERSION, "type": "tree_head", "size": size, "root": root.hex(),
            "key": key_id(key.public_key()), "at": iso_utc(at)}


def sign_tree_head(key: Ed25519PrivateKey, size: int, root: bytes, at: float) -> dict[str, Any]:
    """The tree head as served: the signed line plus its fields for convenience."""
    fields = tree_head_fields(key, size, root, at)
    return {"tree_head": sign_fields(key, fields), **fields}


def proof_json(index: int, size: int, path: list[bytes], leaf_hash: bytes) -> dict[str, Any]:
    return {"leaf_index": index, "tree_size": size, "leaf_hash": leaf_hash.hex(),
            "audit_path": [node.hex() for node in path]}


def head_line(text: str) -> str:
    """The signed line of a tree head given either bare or as the JSON of ``GET /api/v1/tree/head``."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        return stripped
    try:
        doc = json.loads(stripped)
    except ValueError as exc:
        raise LogError(f"the tree head is neither a signed line nor JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tree_head"), str):
        raise LogError("the tree head JSON has no \"tree_head\" signed line")
    line: str = doc["tree_head"]
    return line.strip()


def verify_tree_head(line: str, public: Ed25519PublicKey) -> TreeHead:
    """The fields a tree head's signature covers, after checking the signature and that the key matches."""
    try:
        sig, data = split_signed(line.strip())
        public.verify(sig, data)
    except (InvalidSignature, EnvelopeError):
        raise LogError("the tree head's signature does not verify with the receiver key given") from None
    try:
        fields = load_json(data, "the tree head")
    except EnvelopeError as exc:
        raise LogError(str(exc)) from None
    if fields.get("type") != "tree_head" or not is_int(fields.get("size")) or not is_utc_time(fields.get("at")):
        raise LogError("the signed line is not a tree head")
    if fields.get("key") != key_id(public):
        raise LogError(f"the tree head names receiver key {fields.get('key')!r}, not {key_id(public)}")
    return TreeHead(fields["size"], _hex(fields.get("root"), "root"), fields["at"], fields["key"])


def _hex(value: Any, name: str) -> bytes:
    try:
        raw = bytes.fromhex(str(value))
    except ValueError:
        raise LogError(f"{name} is not hexadecimal") from None
    if len(raw) != 32:
        raise LogError(f"{name} is not a 32-byte SHA-256 hash")
    return raw


def check_inclusion(record_line: str, proof: dict[str, Any], head: str, public: Ed25519PublicKey) -> tuple[
        int, TreeHead]:
    """Check that the record is in the log the signed head commits to; (leaf index, the head). Raises LogError."""
    try:
        record = parse_line(record_line.strip())
    except EnvelopeError as exc:
        raise LogError(f"the record line is not a signed record: {exc}") from None
    tree = verify_tree_head(head, public)
    index, proof_size, path = _proof_fields(proof)
    if proof_size != tree.size:
        raise LogError(f"the proof is for a tree of {proof_size} leaves, the head for {tree.size}; fetch both again")
    try:
        merkle.verify_inclusion(merkle.leaf_hash(record.data), index, tree.size, path, tree.root)
    except merkle.ProofError as exc:
        raise LogError(f"the record is not proven to be in the log: {exc}") from None
    return index, tree


def _proof_fields(proof: dict[str, Any]) -> tuple[int, int, list[bytes]]:
    index, size, path = proof.get("leaf_index"), proof.get("tree_size"), proof.get("audit_path")
    if not is_int(index) or not is_int(size) or not isinstance(path, list):
        raise LogError("a proof has integer leaf_index and tree_size and a list audit_path")
    return index, size, [_hex(node, "an audit path entry") for node in path]
