"""Errors of the ballot box backends; each message is a sentence a technician can act on."""

from __future__ import annotations

from protocol.errors import UserError


class BoxError(UserError):
    """The ballot box unit cannot be used as asked; the slot has been left locked."""
