"""RFC 6962 Merkle tree hashing over the receiver's accepted records.

Pure functions, no I/O. A leaf is hashed as ``SHA-256(0x00 || data)`` and an
interior node as ``SHA-256(0x01 || left || right)``; the tree over ``n`` leaves
splits at the largest power of two below ``n`` (RFC 6962, section 2.1).

The tree is kept as its **complete subtrees**: node ``(level, index)`` is the
root of the perfect subtree over leaves ``[index * 2**level, (index + 1) *
2**level)``, stored once it is complete and never changed afterwards. Storage
hands this module a ``lookup(level, index)`` function; from it any root,
audit path or consistency proof of any past tree size follows in
``O(log² n)`` lookups. Appending needs only the **frontier**: the complete
subtrees that make up the current tree (one per set bit of its size).

Wiring: the receiver's storage persists the nodes ``append`` returns and
supplies ``lookup``; ``treehead.py`` (and so ``pollbox-receiver
verify-inclusion``) calls ``verify_inclusion``; monitors call
``verify_consistency``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from protocol.errors import UserError

Lookup = Callable[[int, int], bytes]
Node = tuple[int, int, bytes]

EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(UserError):
    """A proof was asked for a leaf or size the tree does not have, or does not verify."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def frontier_positions(size: int) -> list[tuple[int, int]]:
    """The (level, index) of each complete subtree making up a tree of ``size`` leaves, left to right."""
    positions, start = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size & (1 << level):
            positions.append((level, start >> level))
            start += 1 << level
    return positions


def root_from_frontier(frontier: Sequence[bytes]) -> bytes:
    """The tree root from its complete subtrees' roots (left to right)."""
    if not frontier:
        return EMPTY_ROOT
    root = frontier[-1]
    for left in reversed(frontier[:-1]):
        root = node_hash(left, root)
    return root


def append(size: int, frontier: Sequence[bytes], leaves: Sequence[bytes]) -> tuple[list[Node], list[bytes]]:
    """Append leaf hashes to a tree of ``size`` leaves.

    Returns the nodes completed by the append (leaves included, as level 0) and
    the new frontier.
    """
    stack = list(zip([lvl for lvl, _ in frontier_positions(size)], frontier, strict=False))
    nodes: list[Node] = []
    for offset, leaf in enumerate(leaves):
        index = size + offset
        level, value = 0, leaf
        nodes.append((0, index, leaf))
        while stack and stack[-1][0] == level:
            value = node_hash(stack.pop()[1], value)
            level += 1
            nodes.append((level, index >> level, value))
        stack.append((level, value))
    return nodes, [value for _, value in stack]


def subtree_root(lookup: Lookup, start: int, end: int) -> bytes:
    """MTH of leaves ``[start, end)``, where ``start`` is aligned as in RFC 6962's recursion."""
    n = end - start
    if n == 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0 and start % n == 0:
        return lookup(n.bit_length() - 1, start // n)
    k = split_point(n)
    return node_hash(subtree_root(lookup, start, start + k), subtree_root(lookup, start + k, end))


def root(lookup: Lookup, size: int) -> bytes:
    return subtree_root(lookup, 0, size)


def audit_path(lookup: Lookup, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 6962 2.1.1, from the leaf upwards."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size} leaves")
    return _path(lookup, index, 0, size)


def _path(lookup: Lookup, m: int, start: int, end: int) -> list[bytes]:
    n = end - start
    if n == 1:
        return []
    k = split_point(n)
    if m < k:
        return _path(lookup, m, start, start + k) + [subtree_root(lookup, start + k, end)]
    return _path(lookup, m - k, start + k, end) + [subtree_root(lookup, start, start + k)]


def root_from_path(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes:
    """The root an audit path leads to (RFC 9162 2.1.3.2); raises ProofError if the path has the wrong length."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of {size} leaves")
    fn, sn, value = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            raise ProofError("the audit path is longer than the tree is deep")
        if fn & 1 or fn == sn:
            value = node_hash(sibling, value)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            value = node_hash(value, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the audit path is shorter than the tree is deep")
    return value


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes], expected_root: bytes) -> None:
    """Raise ProofError unless ``path`` proves ``leaf`` at ``index`` in the tree with ``expected_root``."""
    if root_from_path(leaf, index, size, path) != expected_root:
        raise ProofError("the audit path does not lead to the tree head's root")


def consistency_proof(lookup: Lookup, first: int, second: int) -> list[bytes]:
    """PROOF(first, D[0:second]) of RFC 6962 2.1.2."""
    if not 0 < first <= second:
        raise ProofError(f"no consistency proof from {first} to {second} leaves")
    return _subproof(lookup, first, 0, second, True)


def _subproof(lookup: Lookup, m: int, start: int, end: int, complete: bool) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if complete else [subtree_root(lookup, start, end)]
    k = split_point(n)
    if m <= k:
        return _subproof(lookup, m, start, start + k, complete) + [subtree_root(lookup, start + k, end)]
    return _subproof(lookup, m - k, start + k, end, False) + [subtree_root(lookup, start, start + k)]


def verify_consistency(first: int, second: int, proof: Sequence[bytes], first_root: bytes, second_root: bytes) -> None:
    """Raise ProofError unless ``proof`` shows the tree of ``second`` leaves extends the one of ``first`` (RFC 9162)."""
    if not 0 < first <= second:
        raise ProofError(f"no consistency between sizes {first} and {second}")
    if first == second:
        if proof or first_root != second_root:
            raise ProofError("equal sizes need an empty proof and equal roots")
        return
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    if not path:
        raise ProofError("the consistency proof is empty")
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or fr != first_root or sr != second_root:
        raise ProofError("the consistency proof does not match the two roots")
