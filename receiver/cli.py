"""``pollbox-receiver``: run the CEC receiver and check its public log.

Commands:

- ``serve``: the HTTP receiver under waitress (production WSGI server); ``--processes N``
  runs N receiver processes on one port (``processes.py``);
- ``import FILE...``: ingest USB export files (``pollbox-export/1``) through the network's ingest path;
- ``ingest FILE...``: ingest raw batch files (as a unit would POST them), same path;
- ``verify-inclusion``: check offline that a record is in the log a signed tree head commits to;
- ``keygen``: create the receiver key (and its ``.pub``);
- ``enroll``: add one unit to a registry file and re-sign it (demo and small set-ups;
  the CEC's provisioning tool does the same from enrollment requests);
- ``revoke``: revoke one unit's key in a registry file and re-sign it; records
  of that key are accepted up to ``--last-seq`` or, with ``--db``, up to the
  highest seq of that key the receiver has stored (a running receiver picks
  the new file up by itself);
- ``recount --db URL``: recompute the overview's counts from every station row
  and say whether they had drifted (after receivers of an earlier version wrote
  to the database); safe while other receivers ingest;
- ``registry-import --db URL --registry FILE``: verify a device registry file
  and index it in the receiver's database ahead of time, so that a receiver
  starting on it (or picking it up during the day) only hashes it; a file
  it refuses is named with the device's position and station;
- ``pubkey``: print the base64 public key of a raw private key file.

Errors are one sentence on stderr and exit status 2 (usage/config) or 1
(a check failed); never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
import time
from pathlib import Path
from typing import Any

from protocol.envelope import iso_utc
from protocol.errors import UserError
from protocol.keys import key_id, public_b64
from protocol.treehead import LogError, check_inclusion, head_line
from receiver.ingest import Outcome
from receiver.keys import ReceiverKeyError, create_receiver_key, load_receiver_key
from receiver.processes import follow_parent, listening_sockets, run_children
from receiver.registry import DeviceEntry, Registry, RegistryError, RegistryFile, Revocation, decode_public_key
from receiver.service import DEFAULT_SILENT_AFTER_MINUTES, ReceiverConfigError, build_receiver
from receiver.storage import Storage, open_storage
from receiver.store.db import StorageError, is_postgres, sqlite_path

log = logging.getLogger("pollbox.receiver.cli")


class UsageError(UserError):
    """Bad arguments or files; the message is shown as is."""


def _store_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", required=True, help="postgresql://... URL, or an SQLite file path")
    p.add_argument("--registry", required=True, type=Path, help="the CEC-signed device registry file")
    p.add_argument("--cec-public-key", help="base64 of the CEC's Ed25519 public key")
    p.add_argument("--cec-public-key-file", type=Path, help="a file holding that base64 key")
    p.add_argument("--key", required=True, type=Path, help="the receiver's private key file")
    p.add_argument("--silent-after", type=float, default=DEFAULT_SILENT_AFTER_MINUTES,
                   help="minutes without a record before a voting station is shown as silent")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="pollbox-receiver", description="The reference CEC receiver.")
    top.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = top.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the receiver over HTTP with waitress")
    _store_options(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8090)
    serve.add_argument("--threads", type=int, default=16,
                       help="waitress threads per process (a batch's thread mostly waits for its group's commit, so "
                            "the threads bound how many batches share one: see docs/receiver.md, Benchmarks)")
    serve.add_argument("--processes", type=int, default=1,
                       help="receiver processes sharing the port (SO_REUSEPORT), each with its own threads "
                            "and group writer: more than 1 puts the Python work of ingest on several cores")
    serve.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)  # a child of --processes: its socket
    serve.add_argument("--election-name", help="the election's name (the NIST results report, the verifier page)")
    serve.add_argument("--election-date", help="the polling day, YYYY-MM-DD: the verifier page refuses reports "
                                               "signed on another day (docs/verifier.md)")
    serve.add_argument("--election-timezone", default="Asia/Bishkek", help="the polling day's time zone")
    for name, what in (("import", "USB export files"), ("ingest", "raw batch files")):
        cmd = sub.add_parser(name, help=f"ingest {what} through the network's path")
        _store_options(cmd)
        cmd.add_argument("files", nargs="+", type=Path)
    verify = sub.add_parser("verify-inclusion", help="check a record's inclusion in the public log, offline")
    verify.add_argument("--record", required=True, type=Path, help="file with the record's signed line")
    verify.add_argument("--proof", required=True, type=Path, help="JSON from /api/v1/tree/proof")
    verify.add_argument("--head", required=True, type=Path,
                        help="JSON from /api/v1/tree/head, or the bare signed tree head line")
    verify.add_argument("--receiver-key", required=True, help="base64 of the receiver's public key")
    keygen = sub.add_parser("keygen", help="create the receiver key and KEY.pub")
    keygen.add_argument("path", type=Path)
    enroll = sub.add_parser("enroll", help="add one unit to a registry and sign it with the CEC key")
    enroll.add_argument("--registry", required=True, type=Path)
    enroll.add_argument("--cec-key", required=True, type=Path, help="the CEC's raw private key file")
    enroll.add_argument("--station", required=True)
    enroll.add_argument("--public-key-file", required=True, type=Path, help="the unit's device.pub")
    enroll.add_argument("--serial", required=True)
    enroll.add_argument("--software", default="unknown")
    enroll.add_argument("--unit", default="", help="the unit id the key is for, in a station of several units")
    enroll.add_argument("--role", default="", choices=["", "main", "desk", "mobile"],
                        help="that unit's role: main (the main desk), desk or mobile")
    revoke = sub.add_parser("revoke", help="revoke one unit's key in a registry and sign it with the CEC key")
    revoke.add_argument("--registry", required=True, type=Path)
    revoke.add_argument("--cec-key", required=True, type=Path, help="the CEC's raw private key file")
    revoke.add_argument("--station", required=True)
    revoke.add_argument("--key-id", required=True, help="the key id of the unit to revoke")
    revoke.add_argument("--reason", required=True, help="why (lost, stolen, compromised, ...)")
    revoke.add_argument("--by", required=True, help="who decided the revocation")
    revoke.add_argument("--last-seq", type=int, help="the last seq of this key the CEC accepts")
    revoke.add_argument("--db", help="the receiver's database: accept up to the highest seq of this key it stores")
    recount = sub.add_parser("recount", help="recompute the overview's station counts from every station row")
    recount.add_argument("--db", required=True, help="the receiver's database (SQLite path or PostgreSQL URL)")
    registry_import = sub.add_parser("registry-import", help="verify a device registry and index it in the "
                                                             "database, so a receiver starts on it without reading it")
    registry_import.add_argument("--db", required=True, help="the receiver's database (SQLite path or PostgreSQL URL)")
    registry_import.add_argument("--registry", required=True, type=Path, help="the CEC-signed device registry file")
    registry_import.add_argument("--cec-public-key", help="base64 of the CEC's Ed25519 public key")
    registry_import.add_argument("--cec-public-key-file", type=Path, help="a file holding that base64 key")
    pubkey = sub.add_parser("pubkey", help="print the base64 public key of a raw private key file")
    pubkey.add_argument("path", type=Path)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return int(COMMANDS[args.command](args))
    except (UsageError, ReceiverConfigError, ReceiverKeyError, RegistryError, StorageError) as exc:
        print(f"pollbox-receiver: {exc}", file=sys.stderr)
        return 2


def _config(args: argparse.Namespace) -> dict[str, Any]:
    cec = args.cec_public_key
    if args.cec_public_key_file is not None:
        cec = _read_text(args.cec_public_key_file, "CEC public key").strip()
    if not cec:
        raise UsageError("give the CEC public key with --cec-public-key or --cec-public-key-file")
    return {"DATABASE_URL": args.db, "REGISTRY_PATH": str(args.registry), "CEC_PUBLIC_KEY": cec,
            "RECEIVER_KEY_PATH": str(args.key), "SILENT_AFTER_MINUTES": args.silent_after}


def cmd_registry_import(args: argparse.Namespace) -> int:
    cec = args.cec_public_key
    if args.cec_public_key_file is not None:
        cec = _read_text(args.cec_public_key_file, "CEC public key").strip()
    if not cec:
        raise UsageError("give the CEC public key with --cec-public-key or --cec-public-key-file")
    cec_key = decode_public_key(cec)
    storage = open_storage(args.db)
    try:
        start = time.monotonic()
        loaded = RegistryFile(args.registry, cec_key, storage, time.time)
        registry = loaded.registry
        done = (f"verified and indexed in {time.monotonic() - start:.1f} s" if loaded.newly_indexed
                else "was already indexed")
        print(f"device registry {args.registry} {done}: {len(registry)} devices, {len(registry.revoked())} revoked "
              f"(digest {registry.digest}); a receiver on this database starts on it without reading it again")
    finally:
        storage.close()
    return 0


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc}") from None


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc.strerror}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    import waitress

    from receiver.app import create_app

    election = {"ELECTION_NAME": args.election_name, "ELECTION_DATE": args.election_date,
                "ELECTION_TIMEZONE": args.election_timezone}
    if args.processes < 1 or args.threads < 1:
        raise UsageError("--processes and --threads must be at least 1")
    if args.listen_fd is not None:
        follow_parent()
    app = create_app(_config(args) | {k: v for k, v in election.items() if v})
    if args.listen_fd is not None:  # one of the processes of --processes N
        sock = socket.socket(fileno=args.listen_fd)
        waitress.serve(app, sockets=[sock], threads=args.threads, ident="pollbox-receiver")
        return 0
    if args.processes > 1:
        app.extensions["pollbox_receiver"].storage.close()  # built once for the schema and registry index only
        try:
            sockets = listening_sockets(args.host, args.port, args.processes)
        except OSError as exc:
            raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
        log.info("receiver listening on http://%s:%d with %d processes", args.host, args.port, args.processes)
        return run_children(args.argv, sockets)
    log.info("receiver listening on http://%s:%d", args.host, args.port)
    waitress.serve(app, host=args.host, port=args.port, threads=args.threads, ident="pollbox-receiver")
    return 0


def _report(name: Path, outcome: Outcome) -> bool:
    rejection = outcome.rejection
    summary = f"{name}: station {outcome.station}: {outcome.accepted} accepted, {outcome.duplicates} duplicates"
    if rejection is None:
        print(summary)
        return True
    print(f"{summary}; rejected ({rejection.code}): {rejection.reason}", file=sys.stderr)
    return False


def cmd_import(args: argparse.Namespace) -> int:
    receiver = build_receiver(_config(args))
    ok = True
    for path in args.files:
        for outcome in receiver.import_export(_read_bytes(path, "export file"), f"import:{path.name}"):
            ok = _report(path, outcome) and ok
    receiver.storage.close()
    return 0 if ok else 1


def cmd_ingest(args: argparse.Namespace) -> int:
    receiver = build_receiver(_config(args))
    ok = True
    for path in args.files:
        data = _read_bytes(path, "batch file")
        encoding = "gzip" if data[:2] == b"\x1f\x8b" else None
        ok = _report(path, receiver.ingestor.ingest_body(data, encoding, f"file:{path.name}")) and ok
    receiver.storage.close()
    return 0 if ok else 1


def cmd_verify_inclusion(args: argparse.Namespace) -> int:
    try:
        public = decode_public_key(args.receiver_key)
    except RegistryError:
        raise UsageError("--receiver-key is not a base64 32-byte Ed25519 public key") from None
    record = _read_text(args.record, "record file")
    proof = _read_json(args.proof, "proof")
    try:
        index, head = check_inclusion(record, proof, head_line(_read_text(args.head, "tree head")), public)
    except LogError as exc:
        print(f"NOT VERIFIED: {exc}", file=sys.stderr)
        return 1
    print(f"verified: the record is leaf {index} of the log of {head.size} records with root {head.root.hex()}, "
          f"as the tree head signed at {head.at} by receiver key {head.key} says")
    return 0


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(_read_text(path, what))
    except ValueError as exc:
        raise UsageError(f"the {what} {path} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"the {what} {path} is not a JSON object")
    return doc


def cmd_keygen(args: argparse.Namespace) -> int:
    key = create_receiver_key(args.path)
    print(public_b64(key.public_key()))
    return 0


def cmd_enroll(args: argparse.Namespace) -> int:
    cec = load_receiver_key(args.cec_key)
    public_key = _read_text(args.public_key_file, "device public key").strip()
    registry = Registry.load(args.registry, cec.public_key()) if args.registry.exists() else Registry()
    entry = DeviceEntry(station=args.station, serial=args.serial, public_key=public_key,
                        key_id=key_id(decode_public_key(public_key)), software=args.software,
                        enrolled_at=iso_utc(time.time()))
    if bool(args.unit) != bool(args.role):
        raise UsageError("give --unit and --role together (or neither, for a one-unit station)")
    if registry.for_key(entry.key_id) is None or not args.unit:
        registry.add(entry)
    if args.unit:
        registry.assign_unit(entry.key_id, entry.station, args.unit, args.role)
    registry.sign_and_save(args.registry, cec)
    unit = f" (unit {args.unit}, {args.role})" if args.unit else ""
    print(f"enrolled key {entry.key_id} for station {entry.station}{unit}; {len(registry)} devices in "
          f"{args.registry}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    if (args.last_seq is None) == (args.db is None):
        raise UsageError("give exactly one of --last-seq N (the last seq of this key the CEC accepts) or --db URL "
                         "(accept up to the highest seq of this key the receiver stores)")
    cec = load_receiver_key(args.cec_key)
    registry = Registry.load(args.registry, cec.public_key())
    entry = registry.revocable(args.key_id, args.station)
    last_seq = args.last_seq if args.db is None else _stored_last_seq(args.db, entry)
    if last_seq < 0:
        raise UsageError(f"--last-seq must be 0 or more, not {last_seq}")
    revocation = Revocation(at=iso_utc(time.time()), reason=args.reason, by=args.by, last_seq=last_seq)
    registry.revoke(entry.key_id, entry.station, revocation)
    registry.sign_and_save(args.registry, cec)
    print(f"revoked key {entry.key_id} of station {entry.station} ({entry.serial}): records up to seq {last_seq} "
          f"are accepted, later ones refused (revoked_key); {len(registry)} devices in {args.registry}")
    return 0


def _stored_last_seq(url: str, entry: DeviceEntry) -> int:
    """The highest seq signed by ``entry``'s key that the receiver's database stores."""
    storage = _open_existing(url)
    try:
        return storage.highest_seq_signed_by(entry.station, entry.key_id)
    finally:
        storage.close()


def _open_existing(url: str) -> Storage:
    """The receiver's storage at ``url``; an SQLite file that does not exist is refused, never created."""
    if not is_postgres(url) and not sqlite_path(url).is_file():
        raise UsageError(f"no receiver database at {sqlite_path(url)}")
    return open_storage(url)


def cmd_recount(args: argparse.Namespace) -> int:
    storage = _open_existing(args.db)
    try:
        before = storage.tallies()
        storage.recount()
        after = storage.tallies()
    finally:
        storage.close()
    drift = {name: (before[name], after[name]) for name in after if before[name] != after[name]}
    for name, (was, now) in drift.items():
        print(f"{name}: {was} -> {now}")
    print(f"{after['stations']} stations counted; "
          + (f"{len(drift)} count(s) corrected" if drift else "the counts were exact"))
    return 0


def cmd_pubkey(args: argparse.Namespace) -> int:
    print(public_b64(load_receiver_key(args.path).public_key()))
    return 0


COMMANDS = {"serve": cmd_serve, "import": cmd_import, "ingest": cmd_ingest, "verify-inclusion": cmd_verify_inclusion,
            "keygen": cmd_keygen, "enroll": cmd_enroll, "revoke": cmd_revoke, "recount": cmd_recount,
            "pubkey": cmd_pubkey, "registry-import": cmd_registry_import}

if __name__ == "__main__":
    sys.exit(main())
