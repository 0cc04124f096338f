"""Every station's package in one run: ``pollbox-provision cec packages``.

``prepare`` checks everything that can be checked before anything is built and
reports every problem at once (``ProvisionErrors``): a planned station with no
``<id>.csv`` in the voter list folder (E070), a CSV for no station of the plan
(E071), a ``--stations`` id not in the plan (E072), an enrollment request that
is malformed (E030), for an unknown station or filed under another station's
name (E073), an output folder that belongs to another election (E074).

``build_all`` then builds each station with ``package.build_station`` (the very
function ``cec package`` uses) into ``OUTDIR/.partial-<id>/pollbox/``, fsyncs
it and renames it to ``OUTDIR/<id>/``: a failure, a crash or Ctrl-C never
leaves a folder that looks complete. A station whose voter list is refused is
reported with its numbered errors and the others carry on. A station whose
folder already holds a package that loads for this election is skipped unless
``force``; its manifest entry is kept, or rebuilt from the files. ``Manifest``
(``OUTDIR/manifest.json``) lists only complete stations; it is saved
atomically every ``SAVE_EVERY`` stations and whenever the run ends, even by an
exception. One run at a time per output folder (a lock file). With
``--training`` every package is a training one (``training.py``): folders
stay named by the plan's ids, enrollment requests are for (and named) the
training ids, and the manifest says ``training``, so live and training
packages never share an output folder.

Stations of several units (docs/units.md): ``units_file`` (``--units``) is a
CSV of every such station's units (``units.read_units_file``), read and checked
with the rest before anything is built; a station it does not name is a
one-unit station. A station already built is rebuilt only with ``force`` if
its units changed (E075). With ``registry`` (``--registry``) the units' keys,
already enrolled, get their unit and role in the device registry once the
stations are built (E079 before building if one cannot).
"""

from __future__ import annotations

import difflib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.files import sync_path
from device.package import StationPackage
from protocol.training import is_training_station, live_station_id

from .cec import load_list_key
from .election import ElectionPlan
from .enrollment import check_request, read_json
from .errors import ProvisionError, ProvisionErrors
from .manifest import MANIFEST, STICK_FOLDER, Manifest, manifest_entry, sha256_of
from .package import (
    LIST_KEY_FILE,
    PACKAGE_FILE,
    SEALED_KEY_FILE,
    BuiltStation,
    VoterListRefused,
    build_station,
    check_package,
)
from .training import package_station_id
from .units import StationUnits, enroll_units, read_units_file

SAVE_EVERY = 50
MAX_SHOWN = 100
LOCK = ".packages.lock"
PARTIAL = ".partial-"
REPLACED = ".replaced-"

Clock = Callable[[], float]


@dataclass(frozen=True)
class BulkOrder:
    """What to build: the voter list folder, the output folder and the options of ``cec packages``."""

    voters_dir: Path
    out: Path
    requests_dir: Path | None = None
    only: Sequence[str] | None = None
    force: bool = False
    training: bool = False  # training packages (``training.py``); the output folder then holds no live ones
    units_file: Path | None = None  # the units of the stations of several units (``units.read_units_file``)
    registry: Path | None = None  # the device registry to write the units' keys' units into


@dataclass(frozen=True)
class StationJob:
    station_id: str
    voters_csv: Path
    request: dict[str, Any] | None  # a checked enrollment request body: seal the list key to that unit
    units: StationUnits | None = None  # a station of several units: its units and home-voting lines


@dataclass(frozen=True)
class Outcome:
    """One station's result: ``built``, ``skipped`` or ``failed``, with numbered lines for a failure."""

    station_id: str
    status: str
    detail: str
    errors: tuple[str, ...] = ()


@dataclass
class BulkResult:
    election_id: str
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def failed(self) -> list[str]:
        return [o.station_id for o in self.outcomes if o.status == "failed"]

    def summary(self) -> str:
        return f"{self.count('built')} built, {self.count('skipped')} skipped, {self.count('failed')} failed"


# Checks before anything is built ----------------------------------------------------------------

def prepare(plan: ElectionPlan, order: BulkOrder) -> tuple[list[StationJob], Manifest]:
    """The stations to build and the manifest to keep; every problem at once as ``ProvisionErrors``."""
    problems: list[ProvisionError] = []
    selected = _selected(plan, order.only, problems)
    lists = _voter_lists(plan, order.voters_dir, selected, problems)
    requests = _requests(plan, order.requests_dir, problems, order.training) if order.requests_dir is not None \
        else {}
    manifest = _manifest(plan, order.out, problems, order.training)
    units: dict[str, StationUnits] = {}
    if order.units_file is not None:
        units, unit_problems = read_units_file(order.units_file, set(plan.stations), order.training)
        problems.extend(unit_problems)
    elif order.registry is not None:
        problems.append(ProvisionError("E003", "--registry writes the units' keys into the device registry: give "
                                               "the units with --units"))
    if problems:
        shown = problems[:MAX_SHOWN]
        more = f" ({len(problems) - len(shown)} more not shown)" if len(problems) > len(shown) else ""
        raise ProvisionErrors(shown, f"{len(problems)} problem(s) found before building{more}; nothing was built")
    return [StationJob(sid, lists[sid], requests.get(sid), units.get(sid)) for sid in selected], manifest


def _hint(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _selected(plan: ElectionPlan, only: Sequence[str] | None, problems: list[ProvisionError]) -> list[str]:
    if only is None:
        return list(plan.stations)
    for sid in dict.fromkeys(only):
        if sid not in plan.stations:
            problems.append(ProvisionError("E072", f"--stations: {sid!r} is not in the election plan"
                                                   + _hint(sid, list(plan.stations))))
    return [sid for sid in plan.stations if sid in set(only)]


def _voter_lists(plan: ElectionPlan, folder: Path, selected: list[str],
                 problems: list[ProvisionError]) -> dict[str, Path]:
    if not folder.is_dir():
        problems.append(ProvisionError("E001", f"no voter list folder at {folder}"))
        return {}
    files = {p.name: p for p in folder.iterdir() if p.suffix.lower() == ".csv" and p.is_file()}
    expected = {f"{sid}.csv": sid for sid in plan.stations}
    for sid in selected:
        if f"{sid}.csv" not in files:
            problems.append(ProvisionError("E070", f"{sid}: no voter list {folder / (sid + '.csv')}"
                                                   + _hint(f"{sid}.csv", list(files))))
    for name in sorted(set(files) - set(expected)):
        problems.append(ProvisionError("E071", f"{files[name]}: no station {Path(name).stem!r} in the election "
                                               "plan" + _hint(name, list(expected))))
    return {sid: files[f"{sid}.csv"] for sid in selected if f"{sid}.csv" in files}


def _requests(plan: ElectionPlan, folder: Path, problems: list[ProvisionError],
              training: bool = False) -> dict[str, dict[str, Any]]:
    """The checked enrollment requests by planned station; a training unit's is for (and named) ``TRAINING-<id>``."""
    if not folder.is_dir():
        problems.append(ProvisionError("E001", f"no enrollment request folder at {folder}"))
        return {}
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() == ".json" and p.is_file()):
        try:
            body = check_request(read_json(path, "enrollment request"), str(path))
        except ProvisionError as exc:
            problems.append(exc)
            continue
        if body["station"] != path.stem:
            problems.append(ProvisionError("E073", f"{path}: this request is for station {body['station']}, not "
                                                   f"{path.stem}; name it {body['station']}.json"))
        elif not _planned_request(plan, path.stem, training):
            what = "the training id of a station in" if training else "in"
            problems.append(ProvisionError("E073", f"{path}: station {path.stem!r} is not {what} the election plan"))
        else:
            found[live_station_id(path.stem) if training else path.stem] = body
    return found


def _planned_request(plan: ElectionPlan, station: str, training: bool) -> bool:
    if training:
        return is_training_station(station) and live_station_id(station) in plan.stations
    return station in plan.stations


def _manifest(plan: ElectionPlan, out: Path, problems: list[ProvisionError], training: bool = False) -> Manifest:
    election_id = str(plan.election["id"])
    if out.exists() and not out.is_dir():
        problems.append(ProvisionError("E074", f"{out} is a file, not an output folder"))
        return Manifest(out / MANIFEST, election_id, training)
    try:
        return Manifest.load(out, election_id, training)
    except ProvisionError as exc:
        problems.append(exc)
        return Manifest(out / MANIFEST, election_id, training)


# Building -----------------------------------------------------------------------------------------

@dataclass
class _Run:
    """One bulk run's collaborators, so each step below is a small method."""

    plan: ElectionPlan
    cec_key: Ed25519PrivateKey
    order: BulkOrder
    manifest: Manifest
    clock: Clock

    @property
    def out(self) -> Path:
        return self.order.out

    def station(self, job: StationJob) -> Outcome:
        """Skip, build or fail one station; only ``OSError`` (the output folder) and interruptions escape."""
        folder = self.out / job.station_id
        try:
            if not self.order.force:
                package = self.complete_package(folder, job.station_id)
                if package is not None:
                    return self.skip(job, folder, package)
            return self.build(job, folder)
        except VoterListRefused as exc:
            return Outcome(job.station_id, "failed", str(exc), (*exc.lines, str(exc)))
        except ProvisionError as exc:
            return Outcome(job.station_id, "failed", str(exc), (str(exc),))

    def complete_package(self, folder: Path, station_id: str) -> StationPackage | None:
        """The package already in ``folder`` if it loads for this election and station, with its list key."""
        stick = folder / STICK_FOLDER
        if not (stick / PACKAGE_FILE).exists():
            return None
        try:
            package = check_package(stick / PACKAGE_FILE, self.cec_key, self.manifest.election_id, self.clock())
            sealed = (stick / SEALED_KEY_FILE).exists()
            key_ok = sealed or package.list_key_matches(load_list_key(stick / LIST_KEY_FILE))
        except ProvisionError:
            return None
        wanted = package_station_id(station_id, self.order.training)
        return package if key_ok and package.station_id == wanted else None

    def skip(self, job: StationJob, folder: Path, package: StationPackage) -> Outcome:
        stick = folder / STICK_FOLDER
        digest = sha256_of(stick / PACKAGE_FILE)
        entry = self.manifest.stations.get(job.station_id)
        if entry is None or entry.get("package_sha256") != digest:
            entry = _entry_from_files(stick, package, digest, job.request)
        changed = _changed_inputs(entry, job, stick) or _changed_units(package, job)
        if changed:
            refusal = str(ProvisionError("E075", f"{job.station_id}: already built, but {changed} since; run again "
                                                 f"with --force --stations {job.station_id} to rebuild it"))
            return Outcome(job.station_id, "failed", refusal, (refusal,))
        self.manifest.stations[job.station_id] = entry
        return Outcome(job.station_id, "skipped", f"{job.station_id}: already built (package sha256 {digest})")

    def build(self, job: StationJob, folder: Path) -> Outcome:
        partial = self.out / f"{PARTIAL}{job.station_id}"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            units = None if job.units is None else (job.units.units, job.units.home_voting)
            built = build_station(self.plan, job.station_id, job.voters_csv, self.cec_key, partial / STICK_FOLDER,
                                  self.clock(), seal_to=job.request, training=self.order.training, units=units)
            sync_path(partial / STICK_FOLDER)
            sync_path(partial)
            _move_into_place(partial, folder)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        self.manifest.stations[job.station_id] = manifest_entry(built, sha256_of(job.voters_csv))
        key = f"list key sealed to unit {built.sealed_to}" if built.sealed_to else "plain list.key"
        return Outcome(job.station_id, "built", f"{job.station_id}: {built.voters} voters, package sha256 "
                                                f"{built.sha256}; {key}")


def _entry_from_files(stick: Path, package: StationPackage, digest: str | None,
                      request: dict[str, Any] | None) -> dict[str, Any]:
    """A manifest entry for a complete folder the manifest does not list (a run stopped before saving it)."""
    recipient = _sealed_recipient(stick)
    serial = request["serial"] if request and recipient == request["seal_public_key"] else None
    built = BuiltStation(package.station_id, package.registered, digest or "", serial,
                         str(package.payload.get("issued_at", "")))
    entry = manifest_entry(built, None)
    entry["sealed"] = recipient is not None
    return entry


def _sealed_recipient(stick: Path) -> str | None:
    try:
        doc = json.loads((stick / SEALED_KEY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return str(doc.get("recipient")) if isinstance(doc, dict) else None


def _changed_inputs(entry: dict[str, Any], job: StationJob, stick: Path) -> str | None:
    """What changed since an already-built station was built: its voter list file, or the unit to seal to."""
    known = entry.get("voters_file_sha256")
    if known is not None and known != sha256_of(job.voters_csv):
        return f"its voter list {job.voters_csv.name} changed"
    if job.request is not None and _sealed_recipient(stick) != job.request["seal_public_key"]:
        return f"its list key is not sealed to unit {job.request['serial']} of {job.voters_csv.stem}.json"
    return None


def _changed_units(package: StationPackage, job: StationJob) -> str | None:
    """Whether the units a built package lists differ from the units file's (ids, roles, keys, addresses, lines)."""
    from device.sync.units import units_section
    built = package.payload.get("units")
    wanted = None if job.units is None else units_section(
        [(u.id, u.role, u.public_key, u.address) for u in job.units.units], job.units.home_voting)
    if built == wanted:
        return None
    return "its units changed in the units file" if wanted is not None or built is not None else None


def _registry_units(cec_key: Ed25519PrivateKey, order: BulkOrder, jobs: list[StationJob],
                    stations: set[str] | None = None) -> Any:
    """The device registry with every job's units written into it (only ``stations``' if given); E079 / E032."""
    from .enrollment import _load_registry
    assert order.registry is not None
    if not order.registry.exists():
        raise ProvisionError("E032", f"no device registry at {order.registry}; enroll the units first (cec enroll)")
    registry = _load_registry(order.registry, cec_key)
    problems = []
    for job in jobs:
        if job.units is not None and (stations is None or job.station_id in stations):
            try:
                enroll_units(registry, package_station_id(job.station_id, order.training), job.units.units)
            except ProvisionError as exc:
                problems.append(exc)
    if problems:
        raise ProvisionErrors(problems, f"{len(problems)} unit key(s) cannot be enrolled for their units in "
                                        f"{order.registry}; nothing was built")
    return registry


def _move_into_place(partial: Path, folder: Path) -> None:
    """Rename the complete ``partial`` folder to ``folder``, replacing an earlier one (``--force``)."""
    old = folder.with_name(f"{REPLACED}{folder.name}")
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(partial, folder)
    sync_path(folder.parent)
    shutil.rmtree(old, ignore_errors=True)


def _tidy(out: Path) -> None:
    """Remove what an interrupted run left: partial folders; put back a replaced folder whose successor is missing."""
    for path in out.iterdir():
        if path.name.startswith(PARTIAL):
            shutil.rmtree(path, ignore_errors=True)
        elif path.name.startswith(REPLACED):
            target = out / path.name.removeprefix(REPLACED)
            if target.exists():
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.replace(path, target)


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    with (out / LOCK).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ProvisionError("E074", f"another 'cec packages' run is writing to {out}") from None
        yield


def build_all(plan: ElectionPlan, cec_key: Ed25519PrivateKey, order: BulkOrder, *, clock: Clock = time.time,
              started: Callable[[int], None] | None = None,
              report: Callable[[Outcome], None] | None = None) -> BulkResult:
    """Check everything, then build every selected station; see the module docstring."""
    jobs, manifest = prepare(plan, order)
    if order.registry is not None:
        _registry_units(cec_key, order, jobs)  # every unit key checked before anything is built
    try:
        order.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProvisionError("E074", f"cannot create the output folder {order.out} ({exc.strerror})") from None
    result = BulkResult(manifest.election_id)
    if started is not None:
        started(len(jobs))
    with _locked(order.out):
        _tidy(order.out)
        manifest.keep_complete(set(plan.stations))
        _build_jobs(_Run(plan, cec_key, order, manifest, clock), jobs, result, report)
        if order.registry is not None:
            ready = {o.station_id for o in result.outcomes if o.status in ("built", "skipped")}
            _registry_units(cec_key, order, jobs, ready).sign_and_save(order.registry, cec_key)
    return result


def _build_jobs(run: _Run, jobs: list[StationJob], result: BulkResult,
                report: Callable[[Outcome], None] | None) -> None:
    try:
        for n, job in enumerate(jobs, 1):
            try:
                outcome = run.station(job)
            except OSError as exc:
                raise ProvisionError("E074", f"{job.station_id}: cannot write in {run.out} ({exc}); "
                                             "complete stations are kept, run the command again") from None
            result.outcomes.append(outcome)
            if report is not None:
                report(outcome)
            if n % SAVE_EVERY == 0:
                run.manifest.save()
    finally:
        run.manifest.save()
