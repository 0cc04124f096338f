"""The election plan: one TOML file the CEC writes for the whole election.

It holds what every station package shares (``[election]``, ``[receiver]``,
``[documents]``, ``[hardware]``) and one ``[[stations]]`` table per polling
station. ``load_plan`` checks everything and reports every problem at once as
one ``E021`` error; ``docs/provisioning.md`` documents each key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography import x509

from device.core.documents.rules import SCHEMES, pin_rule_from_mapping

from .errors import ProvisionError

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_STATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

Problems = list[str]


@dataclass(frozen=True)
class ElectionPlan:
    """The checked plan: shared sections as payload-ready dicts, stations by id."""

    election: dict[str, Any]
    receiver: dict[str, str]
    documents: dict[str, Any]
    hardware: dict[str, Any]
    stations: dict[str, dict[str, Any]]

    def station(self, station_id: str) -> dict[str, Any]:
        try:
            return self.stations[station_id]
        except KeyError:
            known = ", ".join(sorted(self.stations)[:10])
            msg = f"station {station_id!r} is not in the election plan (known: {known})"
            raise ProvisionError("E021", msg) from None


def load_plan(path: Path) -> ElectionPlan:
    """Read and check the election plan at ``path``."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProvisionError("E001", f"no election plan at {path}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProvisionError("E021", f"{path}: not a valid TOML election plan ({exc})") from None
    return parse_plan(doc, path.parent, str(path))


def parse_plan(doc: dict[str, Any], base: Path, name: str = "election plan") -> ElectionPlan:
    problems: Problems = []
    plan = ElectionPlan(
        election=_election(_table(doc, "election", problems), problems),
        receiver=_receiver(_table(doc, "receiver", problems), base, problems),
        documents=_documents(doc.get("documents", {}), problems),
        hardware=_hardware(doc.get("hardware", {}), problems),
        stations=_stations(doc.get("stations"), problems),
    )
    unknown = sorted(set(doc) - {"election", "receiver", "documents", "hardware", "stations"})
    problems += [f"{k}: unknown section" for k in unknown]
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise ProvisionError("E021", f"{name}: {len(problems)} problem(s):\n{listing}")
    return plan


def _table(doc: dict[str, Any], key: str, problems: Problems) -> dict[str, Any]:
    value = doc.get(key)
    if not isinstance(value, dict):
        problems.append(f"[{key}]: missing section")
        return {}
    return value


def _need(table: dict[str, Any], prefix: str, key: str, check: Callable[[Any], str | None],
          problems: Problems) -> Any:
    if key not in table:
        problems.append(f"{prefix}.{key}: missing")
        return None
    why = check(table[key])
    if why:
        problems.append(f"{prefix}.{key}: {why}, got {table[key]!r}")
        return None
    return table[key]


def _text(v: Any) -> str | None:
    return None if isinstance(v, str) and v.strip() else "must be a non-empty string"


def _hhmm(v: Any) -> str | None:
    return None if isinstance(v, str) and _HHMM.match(v) else "must be a time HH:MM (24-hour)"


def _day(v: Any) -> str | None:
    try:
        date.fromisoformat(str(v))
    except ValueError:
        return "must be a date YYYY-MM-DD"
    return None


def _zone(v: Any) -> str | None:
    try:
        ZoneInfo(str(v))
    except (ZoneInfoNotFoundError, ValueError):
        return "must be an IANA time zone such as Asia/Bishkek"
    return None


def _instant(v: Any) -> str | None:
    try:
        stamp = datetime.fromisoformat(str(v))
    except ValueError:
        return "must be an ISO-8601 date and time with zone, e.g. 2026-12-31T00:00:00Z"
    return None if stamp.tzinfo is not None else "must carry a time zone (end it with Z for UTC)"


def _election(t: dict[str, Any], problems: Problems) -> dict[str, Any]:
    out = {k: _need(t, "election", k, check, problems) for k, check in (
        ("id", _text), ("name", _text), ("poll_date", _day), ("opens", _hhmm), ("closes", _hhmm),
        ("timezone", _zone), ("expires_at", _instant))}
    if out["opens"] and out["closes"] and out["opens"] >= out["closes"]:
        problems.append(f"election.closes: {out['closes']} is not after opens {out['opens']}")
    if out["poll_date"] and out["expires_at"]:
        expires = datetime.fromisoformat(str(out["expires_at"]))
        if expires.date() <= date.fromisoformat(str(out["poll_date"])):
            problems.append("election.expires_at: must be after the polling day (results are sent after closing)")
    return out


def _receiver(t: dict[str, Any], base: Path, problems: Problems) -> dict[str, str]:
    url = _need(t, "receiver", "url", _text, problems) or ""
    public_key = _need(t, "receiver", "public_key", _text, problems) or ""
    ca_pem = ""
    if "ca_pem_file" in t:
        ca_pem = _ca(base / str(t["ca_pem_file"]), problems)
    elif url.startswith("https://"):
        problems.append("receiver.ca_pem_file: missing (an https receiver needs the CA certificate units pin)")
    if url and not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        problems.append("receiver.url: must be https:// (plain http is allowed only to 127.0.0.1 for practice)")
    return {"url": url, "ca_pem": ca_pem, "public_key": public_key}


def _ca(path: Path, problems: Problems) -> str:
    try:
        pem = path.read_bytes()
        x509.load_pem_x509_certificates(pem)
    except FileNotFoundError:
        problems.append(f"receiver.ca_pem_file: no file at {path}")
        return ""
    except ValueError:
        problems.append(f"receiver.ca_pem_file: {path} is not a PEM certificate")
        return ""
    return pem.decode("ascii")


def _documents(t: Any, problems: Problems) -> dict[str, Any]:
    if not isinstance(t, dict):
        problems.append("[documents]: must be a table")
        return {}
    out: dict[str, Any] = {"pin_rule": t.get("pin_rule", {"country": "KGZ"}),
                           "accepted": list(t.get("accepted", SCHEMES))}
    try:
        pin_rule_from_mapping(out["pin_rule"])
    except (ValueError, TypeError, AttributeError) as exc:
        problems.append(f"documents.pin_rule: {exc}")
    bad = sorted(set(out["accepted"]) - set(SCHEMES))
    if bad:
        problems.append(f"documents.accepted: unknown schemes {bad}; known: {', '.join(SCHEMES)}")
    if "slip_public_key" in t:
        out["slip_public_key"] = str(t["slip_public_key"])
    return out


def _hardware(t: Any, problems: Problems) -> dict[str, Any]:
    if not isinstance(t, dict):
        problems.append("[hardware]: must be a table")
        return {}
    return dict(t)


def _stations(raw: Any, problems: Problems) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        problems.append("[[stations]]: at least one station is needed")
        return {}
    out: dict[str, dict[str, Any]] = {}
    for n, t in enumerate(raw, 1):
        prefix = f"stations[{n}]"
        if not isinstance(t, dict):
            problems.append(f"{prefix}: must be a table")
            continue
        station = _station(t, prefix, problems)
        if station["id"] in out:
            problems.append(f"{prefix}.id: station {station['id']!r} appears twice")
        elif station["id"]:
            out[station["id"]] = station
    return out


def _station(t: dict[str, Any], prefix: str, problems: Problems) -> dict[str, Any]:
    sid = _need(t, prefix, "id", lambda v: None if isinstance(v, str) and _STATION_ID.match(v)
                else "must be 1-64 letters, digits, '.', '_' or '-'", problems)
    name = _need(t, prefix, "name", _text, problems)
    region = _need(t, prefix, "region", _text, problems)
    languages = t.get("languages", ["ky", "ru"])
    if not isinstance(languages, list) or not languages or not all(isinstance(x, str) for x in languages):
        problems.append(f"{prefix}.languages: must be a non-empty list of language codes")
        languages = []
    return {"id": sid or "", "name": name or "", "region": region or "", "languages": languages}
