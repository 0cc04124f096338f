"""The root of every pollbox exception, shared by the unit, the receiver and the tools.

``PollboxError`` is what any part of pollbox raises for a condition it
foresaw. ``UserError`` is the kind whose message is already one sentence for a
person (the chair, the technician, an auditor): the command lines print it
without a traceback and exit with status 2, and the screens show it
translated by its code where it has one. Anything that is not a
``PollboxError`` is a bug, and keeps its traceback.
"""

from __future__ import annotations


class PollboxError(Exception):
    """A condition pollbox foresaw (as opposed to a bug)."""


class UserError(PollboxError):
    """A foreseen condition whose message is one sentence saying what is wrong and what to do."""
