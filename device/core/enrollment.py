"""The device key's enrollment on the journal: the CEC's certificate taken, or refused, each recorded once.

The certificate reaches a unit outside the appliance: the image's take step (``device.firstboot_key take``,
run at boot and when the technician's stick is plugged in) or ``pollbox-provision unit install-package``.
Those write files of the data folder only (``enrollment.json``, the certificate stored; and
``enrollment-refused.json``, why none was), never the journal: the appliance is its one writer. At its
start, and whenever those files change while it runs, it reads them (``device/keystate.py``) and tells the
session what it found as ``EnrollmentFound`` or ``EnrollmentRefusalFound``. ``decide_enrollment`` answers
with one event unless the journal already holds that outcome for that certificate (by the certificate's
SHA-256, folded into ``StationState.key_certificates`` by ``certificate_mark``), so a certificate is
journaled once however often the unit starts with it.

A take that fails before it reads any certificate (the station config has no usable CEC key, the stick cannot
be read) leaves its reason in ``enrollment-refused.json`` too, without a certificate; the appliance tells the
session ``EnrollmentStepFailed``, named by ``attempt`` (the SHA-256 of that note, which the take step writes
afresh at each failure with its time), and the session records ``device_key_enrollment_failed`` once per
attempt.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import events as ev
from .errors import InvalidEvent

REFUSAL_SOURCES = ("stick", "card")
"""Where a refused certificate was: on the technician's USB stick (the take step refused it), or already on
the unit's card as ``enrollment.json`` (it does not hold for this key or this election's CEC)."""
MAX_REASON = 400
"""Characters of a refusal's reason kept on the journal (the take step's sentence names files and keys)."""


@dataclass(frozen=True)
class EnrollmentFound:
    """The unit holds the CEC's valid certificate for its key: ``enrolled`` is the event that records it."""

    enrolled: ev.DeviceKeyEnrolled


@dataclass(frozen=True)
class EnrollmentRefusalFound:
    """A certificate (SHA-256 ``certificate``) was not taken for the key ``key_id``: ``source`` is one of
    ``REFUSAL_SOURCES``, ``reason`` the sentence the technician read, ``refused_at`` when (ISO, "" unknown)."""

    key_id: str
    certificate: str
    source: str
    reason: str
    refused_at: str = ""


@dataclass(frozen=True)
class EnrollmentStepFailed:
    """The take step failed for the key ``key_id`` before it read any certificate: ``reason`` the sentence the
    technician read, ``attempt`` the SHA-256 (hex) naming that attempt's note, ``failed_at`` when (ISO, "" unknown)."""

    key_id: str
    attempt: str
    reason: str
    failed_at: str = ""


def certificate_mark(event: ev.Event) -> str | None:
    """What the fold keeps of an enrollment event (its kind and certificate, or a failed take's attempt); None for
    any other event."""
    if isinstance(event, (ev.DeviceKeyEnrolled, ev.DeviceKeyEnrollmentRefused)):
        return f"{event.kind}:{event.certificate}"
    if isinstance(event, ev.DeviceKeyEnrollmentFailed):
        return f"{event.kind}:{event.attempt}"
    return None


def _bounded(reason: str) -> str:
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"


def decide_enrollment(recorded: frozenset[str] | set[str],
                      found: EnrollmentFound | EnrollmentRefusalFound | EnrollmentStepFailed) -> list[ev.Event]:
    """The event to journal for what the unit found, or none when the journal already holds it."""
    event: ev.Event
    if isinstance(found, EnrollmentFound):
        event = found.enrolled
    elif isinstance(found, EnrollmentStepFailed):
        if not found.attempt or not found.reason:
            raise InvalidEvent("a failed enrollment step needs its attempt and its reason")
        event = ev.DeviceKeyEnrollmentFailed(found.key_id, found.attempt, _bounded(found.reason), found.failed_at)
    else:
        if found.source not in REFUSAL_SOURCES:
            raise InvalidEvent(f"unknown refusal source {found.source!r} (known: {', '.join(REFUSAL_SOURCES)})")
        event = ev.DeviceKeyEnrollmentRefused(found.key_id, found.certificate, found.source, _bounded(found.reason),
                                              found.refused_at)
    return [] if certificate_mark(event) in recorded else [event]
