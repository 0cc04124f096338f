"""``pollbox-provision``: the technician's and the CEC's command line.

Commands are grouped by who runs them::

    pollbox-provision cec keygen --out cec.key
    pollbox-provision cec sample-list --station KG-0001 --count 1500 --out voters.csv
    pollbox-provision cec package --plan election.toml --station KG-0001 --voters voters.csv \\
        --cec-key cec.key --out STICK/pollbox [--list-key F] [--seal-to request.json] [--training] \\
        [--unit ID,ROLE,KEY[,HOST:PORT] ... [--home-voting LINES]]
    pollbox-provision cec packages --plan election.toml --voters-dir LISTS --cec-key cec.key --out OUTDIR \\
        [--requests-dir REQUESTS] [--enrollments-dir CERTS] [--stations ID,ID...] [--force] [--verbose] [--training]
    pollbox-provision cec enroll --cec-key cec.key --registry registry.json --out DIR REQUEST...
    pollbox-provision unit keygen | enroll-request | install-package | backup | reset-pin | readiness | zeroize

Every failure is one numbered line (``E012 voters.csv line 17: ...``, see
``errors.py``) and a non-zero exit status; never a traceback. Long work shows a
tqdm progress bar on stderr. ``POLLBOX_CEC_PASSPHRASE`` holds the CEC key's
passphrase when it has one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

MAX_SHOWN_ERRORS = 100
Handler = Callable[[argparse.Namespace], int]


def _passphrase() -> bytes | None:
    value = os.environ.get("POLLBOX_CEC_PASSPHRASE")
    return value.encode() if value else None


UNENCRYPTED_WARNING = (
    "WARNING: {path} is NOT encrypted. Anyone who copies this one file can sign station packages that every "
    "unit of the election accepts. Keep it only on the CEC's offline machine, or delete it (and {path}.pub) "
    "and make it again encrypted: 'pollbox-provision cec keygen --encrypt --out {path}' asks for a passphrase "
    "(or set POLLBOX_CEC_PASSPHRASE); every command that signs then needs that passphrase.")


def _new_passphrase(args: argparse.Namespace) -> bytes | None:
    """The passphrase for a new CEC key: POLLBOX_CEC_PASSPHRASE, else asked twice when --encrypt is given."""
    from .errors import ProvisionError
    given = _passphrase()
    if given is not None or not args.encrypt:
        return given
    import getpass
    try:
        first = getpass.getpass("passphrase for the new CEC key: ")
        second = getpass.getpass("the same passphrase again: ")
    except EOFError:
        raise ProvisionError("E003", "--encrypt needs a passphrase typed at the prompt or in "
                                     "POLLBOX_CEC_PASSPHRASE; no key written") from None
    if first != second:
        raise ProvisionError("E003", "the two passphrases differ; no key written")
    if len(first) < 8:
        raise ProvisionError("E003", "the passphrase is shorter than 8 characters; no key written")
    return first.encode()


def _cec_key(path: Path) -> Any:
    """Load the CEC key; an encrypted key without POLLBOX_CEC_PASSPHRASE asks for its passphrase on a terminal."""
    from .cec import load_cec_key
    from .errors import ProvisionError
    passphrase = _passphrase()
    try:
        return load_cec_key(path, passphrase)
    except ProvisionError as exc:
        if passphrase is not None or "is encrypted" not in exc.message or not sys.stdin.isatty():
            raise
    import getpass
    return load_cec_key(path, getpass.getpass(f"passphrase of {path}: ").encode())


def _config(args: argparse.Namespace) -> Any:
    from device.config import ConfigError, load_config

    from .errors import ProvisionError
    try:
        return load_config(args.config)
    except ConfigError as exc:
        raise ProvisionError("E041", str(exc)) from None


# CEC side ---------------------------------------------------------------------------

def cec_keygen(args: argparse.Namespace) -> int:
    from .cec import create_cec_key, public_b64, public_path
    passphrase = _new_passphrase(args)
    key = create_cec_key(args.out, passphrase)
    state = "encrypted with the passphrase" if passphrase else "NOT encrypted"
    print(f"CEC signing key written to {args.out} ({state}; keep it offline); "
          f"public key in {public_path(args.out)}:")
    print(public_b64(key.public_key()))
    if passphrase is None:
        print(UNENCRYPTED_WARNING.format(path=args.out), file=sys.stderr)
    return 0


def cec_sample_list(args: argparse.Namespace) -> int:
    from .samplelist import write_sample_csv
    write_sample_csv(args.out, args.station, args.count, args.seed)
    print(f"practice voter list with {args.count} invented voters written to {args.out}")
    return 0


def _rows_in(path: Path) -> int | None:
    """The number of data rows for the progress bar; None if the file cannot be read (the import says why)."""
    try:
        with path.open("rb") as f:
            return max(1, sum(1 for _ in f) - 1)
    except OSError:
        return None


def _print_bad_rows(lines: list[str], write: Callable[[str], None]) -> None:
    for line in lines[:MAX_SHOWN_ERRORS]:
        write(line)
    more = len(lines) - MAX_SHOWN_ERRORS
    if more > 0:
        write(f"... and {more} more bad rows")


def _seal_request(path: Path) -> dict[str, Any]:
    from .enrollment import check_request, read_json
    return check_request(read_json(path, "enrollment request"), str(path))


def cec_package(args: argparse.Namespace) -> int:
    from .cec import load_list_key
    from .election import load_plan
    from .package import VoterListRefused, build_station
    cec_key = _cec_key(args.cec_key)
    list_key = load_list_key(args.list_key) if args.list_key else None
    request = _seal_request(args.seal_to) if args.seal_to else None
    plan = load_plan(args.plan)
    plan.station(args.station)
    units = _units(args)
    registry = _package_registry(args, units, cec_key)
    with tqdm(total=_rows_in(args.voters), desc="voter list", unit="row", file=sys.stderr, disable=None) as bar:
        try:
            built = build_station(plan, args.station, args.voters, cec_key, args.out, time.time(),
                                  list_key=list_key, seal_to=request, progress=bar.update, training=args.training,
                                  units=units)
        except VoterListRefused as exc:
            bar.close()
            _print_bad_rows(exc.lines, lambda line: print(line, file=sys.stderr))
            raise
        if bar.total != bar.n:  # blank or multi-line rows: the line count was only an estimate
            bar.total = bar.n
            bar.refresh()
    key_note = (f"list key sealed to unit {built.sealed_to}" if built.sealed_to
                else "list key in list.key (NOT sealed: keep the stick in custody)")
    kind = f"TRAINING package for {built.station_id}: " if args.training else ""
    print(f"{kind}{args.station}: {built.voters} voters packaged, package sha256 {built.sha256}; {key_note}")
    if registry is not None:
        registry.sign_and_save(args.registry, cec_key)
        print(f"device registry {args.registry}: the units' keys enrolled for their units; copy it to the receiver")
    if units is not None:
        listed = ", ".join(f"{u.id} ({u.role})" for u in units[0])
        print(f"units: {listed}; main unit {next(u.id for u in units[0] if u.role == 'desk')}; "
              f"{len(units[1])} line(s) registered for home voting")
    return 0


def _units(args: argparse.Namespace) -> Any:
    """The checked ``--unit`` options and ``--home-voting`` lines (None for a one-unit station); E078 if bad."""
    from .errors import ProvisionError
    from .training import package_station_id
    from .units import parse_lines, parse_unit
    if not args.unit:
        if args.home_voting:
            raise ProvisionError("E078", "--home-voting lists voters for the mobile unit: give the station's units "
                                         "with --unit")
        return None
    station = package_station_id(args.station, args.training)
    return [parse_unit(text, station) for text in args.unit], parse_lines(args.home_voting) if args.home_voting \
        else []


def _package_registry(args: argparse.Namespace, units: Any, cec_key: Any) -> Any:
    """The device registry with the units' ids and roles written into their keys' entries (not saved); None
    without ``--registry``. Checked before the package is written: E079 for a key not enrolled for the station."""
    from .enrollment import _load_registry
    from .errors import ProvisionError
    from .training import package_station_id
    from .units import enroll_units
    if args.registry is None:
        return None
    if units is None:
        raise ProvisionError("E003", "--registry writes the units' keys into the device registry: give the units "
                                     "with --unit")
    if not args.registry.exists():
        raise ProvisionError("E032", f"no device registry at {args.registry}; enroll the units first (cec enroll)")
    registry = _load_registry(args.registry, cec_key)
    enroll_units(registry, package_station_id(args.station, args.training), units[0])
    return registry


def _station_ids(text: str | None) -> list[str] | None:
    from .errors import ProvisionError
    if text is None:
        return None
    ids = [s.strip() for s in text.split(",") if s.strip()]
    if not ids:
        raise ProvisionError("E003", "--stations names no station (give IDs separated by commas)")
    return ids


class _StationsBar:
    """The stations progress bar; failures (with their numbered lines) and skips are printed above it."""

    def __init__(self, verbose: bool) -> None:
        self.bar = tqdm(desc="stations", unit="station", file=sys.stderr, disable=None)
        self.verbose = verbose

    def started(self, total: int) -> None:
        self.bar.reset(total=total)

    def report(self, outcome: Any) -> None:
        self.bar.update(1)
        if outcome.status == "failed":
            self.write(f"{outcome.station_id}: FAILED")
            _print_bad_rows([f"  {line}" for line in outcome.errors], self.write)
        elif outcome.status == "skipped" or self.verbose:
            self.write(outcome.detail)

    def write(self, line: str) -> None:
        tqdm.write(line, file=sys.stderr)


def cec_packages(args: argparse.Namespace) -> int:
    from .bulk import BulkOrder, build_all
    from .election import load_plan
    from .errors import ProvisionError
    plan = load_plan(args.plan)
    if args.enrollments_dir is not None and not args.enrollments_dir.is_dir():
        raise ProvisionError("E001", f"no enrollment certificate folder at {args.enrollments_dir}")
    cec_key = _cec_key(args.cec_key)
    order = BulkOrder(args.voters_dir, args.out, args.requests_dir, _station_ids(args.stations), args.force,
                      training=args.training, units_file=args.units, registry=args.registry)
    progress = _StationsBar(args.verbose)
    try:
        result = build_all(plan, cec_key, order, started=progress.started, report=progress.report)
    finally:
        progress.bar.close()
    print(f"{result.election_id}: {result.summary()}; manifest {args.out / 'manifest.json'}")
    if args.enrollments_dir is not None:
        from .certificates import copy_certificates
        ready = [o.station_id for o in result.outcomes if o.status in ("built", "skipped")]
        print(copy_certificates(args.enrollments_dir, args.out, ready).summary())
    failed = result.failed()
    if failed:
        listed = ", ".join(failed[:20]) + (f" and {len(failed) - 20} more" if len(failed) > 20 else "")
        raise ProvisionError("E076", f"{len(failed)} station(s) could not be packaged: {listed}; correct them and "
                                     "run the same command again (complete stations are skipped)")
    return 0


def cec_enroll(args: argparse.Namespace) -> int:
    from .election import load_plan
    from .enrollment import enroll
    stations = load_plan(args.plan).stations if args.plan else None
    certs = enroll(args.requests, args.registry, _cec_key(args.cec_key), args.out, time.time(),
                   stations)
    for cert in certs:
        print(f"enrolled: {cert}")
    print(f"device registry {args.registry} signed with {len(certs)} new unit(s); copy it to the receiver")
    return 0


def cec_software_list(args: argparse.Namespace) -> int:
    """Add a certified (version, code hash) to the CEC's software list and sign it (``receiver/software_list.py``)."""
    from device.software import running_software
    from receiver.software_list import SoftwareListError, read_software_list, write_software_list

    from .errors import ProvisionError
    cec = _cec_key(args.cec_key)
    here = running_software()
    version, code_hash = args.version or here["version"], args.hash or here["hash"]
    try:
        entries = read_software_list(args.out.read_bytes(), cec.public_key(), str(args.out)) \
            if args.out.exists() else []
        if any((e["version"], e["hash"]) == (version, code_hash) for e in entries):
            print(f"{version} {code_hash} is already on the list {args.out}")
            return 0
        entries.append({"version": version, "hash": code_hash, "note": args.note})
        write_software_list(args.out, entries, cec)
    except (SoftwareListError, OSError) as exc:
        raise ProvisionError("E077", str(exc)) from None
    print(f"software list {args.out} signed with {len(entries)} certified version(s); copy it to the receiver "
          "(SOFTWARE_LIST_PATH) and publish it")
    return 0


# Unit side ----------------------------------------------------------------------------

def unit_keygen(args: argparse.Namespace) -> int:
    from .enrollment import create_unit_keys
    config = _config(args)
    key = create_unit_keys(config.data_dir, config.key.store, config.key.tcti)
    where = f"the TPM ({config.key.tcti})" if config.key.store == "tpm" else str(config.data_dir)
    print(f"device key {key} created in {where}")
    return 0


def unit_enroll_request(args: argparse.Namespace) -> int:
    from .enrollment import make_request, unit_serial, write_json
    config = _config(args)
    request = make_request(config.data_dir, args.station, args.serial or unit_serial(), time.time(),
                           config.key.store, config.key.tcti)
    write_json(args.out, request)
    print(f"enrollment request for {args.station}, unit {request['serial']}, key {request['key_id']}: {args.out}")
    return 0


def unit_install_package(args: argparse.Namespace) -> int:
    from .install import install_from
    done = install_from(args.source, _config(args), time.time())
    print(f"installed {done.station_id}: {done.registered} voters; list key "
          f"{'sealed to this unit' if done.sealed else 'from a plain file'}; "
          f"{'enrollment recorded' if done.enrolled else 'no enrollment certificate on the stick yet'}")
    return 0


def unit_backup(args: argparse.Namespace) -> int:
    from .backupsetting import clear_backup, set_backup, setting_path
    config = _config(args)
    if args.directory is not None:
        written = set_backup(config, args.directory)
        print(f"journal backup folder set to {args.directory} (in {written}); it takes effect when pollbox "
              "starts again ('sudo systemctl restart pollbox')")
    elif args.off:
        removed = clear_backup(config)
        print("journal backup switched off; it takes effect when pollbox starts again" if removed
              else "no journal backup folder was set")
    elif config.backup_dir is None:
        print("no journal backup folder is set ('pollbox-provision unit backup --directory /media/pollbox-backup')")
    else:
        where = setting_path(config) if setting_path(config).exists() else config.path
        print(f"journal backup folder: {config.backup_dir} (set in {where})")
    return 0


def unit_reset_pin(args: argparse.Namespace) -> int:
    from web_ui.pin import reset

    from .errors import ProvisionError
    config = _config(args)
    try:
        had = reset(config.web_dir)
    except OSError as exc:
        raise ProvisionError("E001", f"the chair PIN in {config.web_dir} cannot be removed ({exc.strerror}); "
                                     "run the command as the technician (sudo)") from None
    print("chair PIN removed: the chair's screen now asks the chair to choose a new one" if had
          else "no chair PIN was set: the chair's screen asks the chair to choose one")
    return 0


def _appliance(config: Any) -> Any:
    from device.compose import build_appliance

    from .errors import ProvisionError
    if (config.data_dir / "control.sock").exists():
        raise ProvisionError("E041", "the appliance is running; stop it first ('systemctl stop pollbox')")
    try:
        return build_appliance(config)
    except Exception as exc:  # every start-up failure becomes one numbered line
        raise ProvisionError("E041", f"the appliance cannot start: {exc}") from None


def unit_readiness(args: argparse.Namespace) -> int:
    from .errors import ProvisionError
    from .readiness import record, render, run_checks, write_report
    config = _config(args)
    app = _appliance(config)
    app.start(background=False)
    try:
        result = run_checks(config, app, time.time())
        record(result, app)
        if app.upstream is not None:  # the signed readiness note goes to the CEC now if the link allows
            app.upstream.drain_once(force=True)
    finally:
        app.stop()
    print(render(result), end="")
    if args.output:
        write_report(result, args.output)
    if not result.ok:
        raise ProvisionError("E040", "readiness: " + ", ".join(c.name for c in result.failed()) + " failed")
    return 0


def unit_zeroize(args: argparse.Namespace) -> int:
    config = _config(args)
    app = _appliance(config)
    app.start(background=False)
    try:
        done = _zeroize_or_force(config, app, args.force)
    except BaseException:
        app.stop()
        raise
    print(f"{done.station}: wiped {', '.join(done.wiped)}; signed record in {done.record_path}")
    return 0


def _zeroize_or_force(config: Any, app: Any, force: bool) -> Any:
    """Zeroize; if refused for unacknowledged records and ``--force`` was given, ask for the typed phrase."""
    from .errors import ProvisionError
    from .zeroize import confirmation_phrase, zeroize
    try:
        return zeroize(config, app, time.time())
    except ProvisionError as exc:
        if exc.code != "E050" or not force:
            raise
        print(exc, file=sys.stderr)
    phrase = confirmation_phrase(str(app.status()["station"]["id"]))
    try:
        typed = input(f"Type {phrase} to wipe despite unacknowledged records: ")
    except EOFError:
        raise ProvisionError("E051", f"no confirmation typed (expected '{phrase}'); nothing wiped") from None
    return zeroize(config, app, time.time(), typed)


# Parser ---------------------------------------------------------------------------------

def _default_config() -> Path:
    return Path(os.environ.get("POLLBOX_CONFIG", "/etc/pollbox/station.toml"))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pollbox-provision", description="pollbox technician and CEC tools")
    who = p.add_subparsers(dest="who", required=True)
    cec = who.add_parser("cec", help="on the CEC's offline machine").add_subparsers(dest="command", required=True)
    c = cec.add_parser("keygen", help="create the CEC package signing key")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--encrypt", action="store_true",
                   help="encrypt the key with a passphrase asked twice (or POLLBOX_CEC_PASSPHRASE)")
    c.set_defaults(func=cec_keygen)
    c = cec.add_parser("sample-list", help="write a practice voter list of invented voters")
    c.add_argument("--station", required=True)
    c.add_argument("--count", type=int, default=1500)
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--out", type=Path, required=True)
    c.set_defaults(func=cec_sample_list)
    c = cec.add_parser("package", help="import a voter list and write a signed station package")
    c.add_argument("--plan", type=Path, required=True, help="the election plan (TOML)")
    c.add_argument("--station", required=True)
    c.add_argument("--voters", type=Path, required=True, help="the station's voter list (CSV)")
    c.add_argument("--cec-key", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True, help="folder to write (the stick's pollbox/ folder)")
    c.add_argument("--list-key", type=Path, help="reuse this list key instead of making a new one")
    c.add_argument("--seal-to", type=Path, help="the unit's enrollment request: seal the list key to it")
    c.add_argument("--unit", action="append", default=[], metavar="ID,ROLE,KEY[,HOST:PORT]",
                   help="a unit of a station of several units (give each; the first desk is the main unit): "
                        "ROLE desk or mobile, KEY its enrollment request, device.pub or base64 key, HOST:PORT "
                        "its sync server")
    c.add_argument("--registry", type=Path,
                   help="the device registry: write each --unit's id and role into its enrolled key's entry")
    c.add_argument("--home-voting", metavar="LINES",
                   help="voter list lines registered for home voting, e.g. 11,12,40-45 (the mobile unit admits them)")
    c.add_argument("--training", action="store_true",
                   help="a training package: station TRAINING-<id>, its own journal, never counted by the CEC")
    c.set_defaults(func=cec_package)
    c = cec.add_parser("packages", help="write the signed package of every station of the plan in one run")
    c.add_argument("--plan", type=Path, required=True, help="the election plan (TOML)")
    c.add_argument("--voters-dir", type=Path, required=True, help="folder of voter lists, one <station id>.csv each")
    c.add_argument("--cec-key", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True, help="output folder: <station id>/pollbox/ and manifest.json")
    c.add_argument("--requests-dir", type=Path,
                   help="folder of enrollment requests, <station id>.json: seal those stations' list keys")
    c.add_argument("--enrollments-dir", type=Path,
                   help="folder of 'cec enroll' certificates: copy each station's into its folder for the stick")
    c.add_argument("--stations", help="only these stations (IDs separated by commas)")
    c.add_argument("--force", action="store_true", help="rebuild stations that are already built")
    c.add_argument("--verbose", action="store_true", help="also print one line per station built")
    c.add_argument("--units", type=Path, metavar="CSV",
                   help="the units of the stations of several units: station,unit,role,key,address,home_voting "
                        "(docs/units.md)")
    c.add_argument("--registry", type=Path,
                   help="the device registry: write each unit's id and role into its enrolled key's entry")
    c.add_argument("--training", action="store_true",
                   help="training packages (TRAINING-<id>, never counted); the output folder holds no live ones")
    c.set_defaults(func=cec_packages)
    c = cec.add_parser("enroll", help="sign enrollment requests into the device registry")
    c.add_argument("--cec-key", type=Path, required=True)
    c.add_argument("--registry", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True, help="folder for the enrollment certificates")
    c.add_argument("--plan", type=Path, help="refuse stations not in this election plan")
    c.add_argument("requests", type=Path, nargs="+")
    c.set_defaults(func=cec_enroll)
    c = cec.add_parser("software-list", help="add certified unit software to the CEC's signed software list")
    c.add_argument("--cec-key", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True, help="the software list file (created, or added to)")
    c.add_argument("--version", default="", help="the pollbox version (default: this installation's)")
    c.add_argument("--hash", default="", help="SHA-256 of the unit's installed code (default: this installation's)")
    c.add_argument("--note", default="", help="a short note, e.g. who certified it and when")
    c.set_defaults(func=cec_software_list)
    unit = who.add_parser("unit", help="on a station unit").add_subparsers(dest="command", required=True)
    for name, func, helptext in (
            ("keygen", unit_keygen, "create the unit's device and sealing keys"),
            ("enroll-request", unit_enroll_request, "write the unit's signed enrollment request"),
            ("install-package", unit_install_package, "install the station package from the USB stick"),
            ("backup", unit_backup, "show or set the journal backup folder (kept on the data partition)"),
            ("reset-pin", unit_reset_pin, "remove a forgotten chair PIN: the screen asks the chair for a new one"),
            ("readiness", unit_readiness, "run and print the readiness self-test"),
            ("zeroize", unit_zeroize, "wipe keys and voter data after the CEC has every record")):
        u = unit.add_parser(name, help=helptext)
        u.add_argument("--config", type=Path, default=_default_config())
        u.set_defaults(func=func)
        if name == "enroll-request":
            u.add_argument("--station", required=True)
            u.add_argument("--serial")
            u.add_argument("--out", type=Path, required=True)
        elif name == "install-package":
            u.add_argument("--from", dest="source", type=Path, required=True, help="the stick's pollbox/ folder")
        elif name == "backup":
            how = u.add_mutually_exclusive_group()
            how.add_argument("--directory", type=Path, help="where the backup stick is mounted in the unit")
            how.add_argument("--off", action="store_true", help="no journal backup")
        elif name == "readiness":
            u.add_argument("--output", type=Path, help="also write the printable report here")
        elif name == "zeroize":
            u.add_argument("--force", action="store_true", help="wipe despite unacknowledged records (asks to type)")
    return p


def main(argv: list[str] | None = None) -> int:
    from .errors import ProvisionError
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ProvisionError as exc:
        print(str(exc), file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("interrupted; nothing half-written was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
