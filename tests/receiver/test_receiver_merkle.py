"""The public log: RFC 6962 hashing checked against published vectors and a naive independent implementation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from rx_kit import Setup, post

from protocol import merkle
from protocol.keys import public_b64
from protocol.treehead import LogError, check_inclusion
from receiver.cli import main as cli_main

# The eight leaves of the Certificate Transparency reference tests and the roots of their prefixes.
CT_LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                        "606162636465666768696a6b6c6d6e6f")]
CT_ROOTS = ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]


# A naive implementation, written straight from RFC 6962 section 2.1 over a list of leaf data.

def naive_root(data: list[bytes]) -> bytes:
    if not data:
        return hashlib.sha256(b"").digest()
    if len(data) == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < len(data):
        k *= 2
    return hashlib.sha256(b"\x01" + naive_root(data[:k]) + naive_root(data[k:])).digest()


def naive_path(m: int, data: list[bytes]) -> list[bytes]:
    if len(data) <= 1:
        return []
    k = 1
    while k * 2 < len(data):
        k *= 2
    if m < k:
        return naive_path(m, data[:k]) + [naive_root(data[k:])]
    return naive_path(m - k, data[k:]) + [naive_root(data[:k])]


def naive_consistency(m: int, data: list[bytes], complete: bool = True) -> list[bytes]:
    if m == len(data):
        return [] if complete else [naive_root(data)]
    k = 1
    while k * 2 < len(data):
        k *= 2
    if m <= k:
        return naive_consistency(m, data[:k], complete) + [naive_root(data[k:])]
    return naive_consistency(m - k, data[k:], False) + [naive_root(data[:k])]


class MemoryTree:
    """Complete subtrees in a dict, grown with ``merkle.append``."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.size, self.frontier = 0, []  # type: ignore[var-annotated]

    def add(self, data: list[bytes]) -> None:
        new, self.frontier = merkle.append(self.size, self.frontier, [merkle.leaf_hash(d) for d in data])
        for level, idx, value in new:
            assert (level, idx) not in self.nodes, "a complete subtree never changes"
            self.nodes[(level, idx)] = value
        self.size += len(data)

    def lookup(self, level: int, idx: int) -> bytes:
        return self.nodes[(level, idx)]


def leaves(n: int) -> list[bytes]:
    return [f"leaf {i}".encode() for i in range(n)]


def test_roots_match_the_certificate_transparency_vectors() -> None:
    tree = MemoryTree()
    for size, expected in enumerate(CT_ROOTS, 1):
        tree.add([CT_LEAVES[size - 1]])
        assert merkle.root_from_frontier(tree.frontier).hex() == expected
        assert merkle.root(tree.lookup, size).hex() == expected
    assert merkle.root(tree.lookup, 0) == hashlib.sha256(b"").digest()


@given(st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=12))
def test_incremental_tree_matches_the_naive_one_for_any_batching(batches: list[int]) -> None:
    data, tree = leaves(sum(batches)), MemoryTree()
    done = 0
    for n in batches:
        tree.add(data[done:done + n])
        done += n
        assert merkle.root_from_frontier(tree.frontier) == naive_root(data[:done])


@pytest.mark.parametrize("size", [*range(1, 40), 63, 64, 65, 100, 127, 128, 129])
def test_every_audit_path_matches_the_naive_one_and_verifies(size: int) -> None:
    data, tree = leaves(size), MemoryTree()
    tree.add(data)
    root = naive_root(data)
    for m in range(size):
        path = merkle.audit_path(tree.lookup, m, size)
        assert path == naive_path(m, data)
        merkle.verify_inclusion(merkle.leaf_hash(data[m]), m, size, path, root)


@given(st.integers(min_value=1, max_value=300), st.data())
def test_proofs_for_past_sizes_match_the_naive_ones(size: int, draw: st.DataObject) -> None:
    data, tree = leaves(size + 50), MemoryTree()
    tree.add(data)
    m = draw.draw(st.integers(min_value=0, max_value=size - 1))
    first = draw.draw(st.integers(min_value=1, max_value=size))
    assert merkle.audit_path(tree.lookup, m, size) == naive_path(m, data[:size])
    proof = merkle.consistency_proof(tree.lookup, first, size)
    assert proof == naive_consistency(first, data[:size])
    merkle.verify_consistency(first, size, proof, naive_root(data[:first]), naive_root(data[:size]))


@given(st.integers(min_value=2, max_value=200), st.data())
def test_tampered_inclusion_proofs_fail(size: int, draw: st.DataObject) -> None:
    data, tree = leaves(size), MemoryTree()
    tree.add(data)
    m = draw.draw(st.integers(min_value=0, max_value=size - 1))
    path, root = merkle.audit_path(tree.lookup, m, size), naive_root(data)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(merkle.leaf_hash(b"not a leaf"), m, size, path, root)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(merkle.leaf_hash(data[m]), (m + 1) % size, size, path, root)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(merkle.leaf_hash(data[m]), m, size, path[:-1], root)
    bent = [bytes(32)] + path[1:]
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(merkle.leaf_hash(data[m]), m, size, bent, root)


def test_consistency_with_a_rewritten_history_fails() -> None:
    data, tree = leaves(20), MemoryTree()
    tree.add(data)
    proof = merkle.consistency_proof(tree.lookup, 7, 20)
    forged = naive_root([b"rewritten"] + data[1:7])
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(7, 20, proof, forged, naive_root(data))


def test_log_over_http_proves_every_record(app: Flask, client: FlaskClient, setup: Setup) -> None:
    records = setup.units["KG-0001"].records(5) + setup.units["KG-0002"].records(4)
    post(client, records[:5])
    post(client, records[5:])
    head = client.get("/api/v1/tree/head").get_json()
    assert (head["size"], head["root"]) == (9, naive_root([r.data for r in records]).hex())
    public = setup.receiver_key.public_key()
    for index, record in enumerate(records):
        proof = client.get(f"/api/v1/tree/proof?hash={record.hash}").get_json()
        assert check_inclusion(record.line(), proof, head["tree_head"], public)[0] == index


def test_proof_against_an_earlier_head_still_verifies(app: Flask, client: FlaskClient, setup: Setup) -> None:
    unit = setup.units["KG-0001"]
    first = unit.records(3)
    post(client, first)
    old_head = client.get("/api/v1/tree/head").get_json()
    post(client, unit.records(6))
    proof = client.get(f"/api/v1/tree/proof?hash={first[1].hash}&size=3").get_json()
    assert check_inclusion(first[1].line(), proof, old_head["tree_head"], setup.receiver_key.public_key())[0] == 1
    assert client.get("/api/v1/tree/head/3").get_json()["root"] == old_head["root"]
    consistency = client.get("/api/v1/tree/consistency?first=3").get_json()
    new_head = client.get("/api/v1/tree/head").get_json()
    merkle.verify_consistency(3, 9, [bytes.fromhex(h) for h in consistency["proof"]],
                              bytes.fromhex(old_head["root"]), bytes.fromhex(new_head["root"]))


def test_proof_requests_with_bad_arguments_are_refused(app: Flask, client: FlaskClient, setup: Setup) -> None:
    records = setup.units["KG-0001"].records(2)
    post(client, records)
    assert client.get("/api/v1/tree/proof?hash=xyz").status_code == 400
    assert client.get(f"/api/v1/tree/proof?hash={'0' * 64}").status_code == 404
    assert client.get(f"/api/v1/tree/proof?hash={records[1].hash}&size=1").status_code == 400
    assert client.get(f"/api/v1/tree/proof?hash={records[1].hash}&size=9").status_code == 400
    assert client.get("/api/v1/tree/consistency?first=3").status_code == 400


def test_forged_head_or_foreign_record_fails_verification(app: Flask, client: FlaskClient, setup: Setup) -> None:
    records = setup.units["KG-0001"].records(3)
    post(client, records)
    head = client.get("/api/v1/tree/head").get_json()
    proof = client.get(f"/api/v1/tree/proof?hash={records[0].hash}").get_json()
    public = setup.receiver_key.public_key()
    with pytest.raises(LogError, match="not proven"):
        check_inclusion(records[1].line(), proof, head["tree_head"], public)
    with pytest.raises(LogError, match="signature"):
        check_inclusion(records[0].line(), proof, head["tree_head"], setup.cec.public_key())
    forged = dict(head, tree_head=head["tree_head"].replace(head["root"], "00" * 32))
    with pytest.raises(LogError, match="signature"):
        check_inclusion(records[0].line(), proof, forged["tree_head"], public)


def test_verify_inclusion_command(app: Flask, client: FlaskClient, setup: Setup, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    records = setup.units["KG-0001"].records(4)
    post(client, records)
    files = {"record": records[2].line(), "proof": json.dumps(client.get(
        f"/api/v1/tree/proof?hash={records[2].hash}").get_json()),
        "head": json.dumps(client.get("/api/v1/tree/head").get_json())}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    args = ["verify-inclusion", "--record", str(tmp_path / "record"), "--proof", str(tmp_path / "proof"),
            "--head", str(tmp_path / "head")]
    assert cli_main([*args, "--receiver-key", public_b64(setup.receiver_key.public_key())]) == 0
    assert "leaf 2 of the log of 4 records" in capsys.readouterr().out
    (tmp_path / "record").write_text(records[3].line())
    assert cli_main([*args, "--receiver-key", public_b64(setup.receiver_key.public_key())]) == 1
    assert "NOT VERIFIED" in capsys.readouterr().err
    assert cli_main([*args, "--receiver-key", "nonsense"]) == 2
