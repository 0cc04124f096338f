"""SIGTERM stops ``pollbox run`` whatever moment of its wait it arrives in (``device.runner.StopSignal``).

A Python signal handler runs in the main thread between two of its steps. ``pollbox run`` used to wait on a
``threading.Event`` that its SIGTERM handler set: a SIGTERM arriving while the main thread held that Event's
lock (on its way into the wait) made the handler wait for the lock its own thread held, and the process
ignored SIGTERM from then on (it stayed up until killed). Each child here waits the way ``pollbox run`` does,
with a profile hook that sends the process SIGTERM at the N-th function call of the wait, N = 1 ..
``CALLS``: every step of the wait gets its turn. A child whose wait made fewer than N calls (it is blocked,
waiting) gets SIGTERM from here instead. Every child must end, and on its own account.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests.process_station import child_env

CALLS = 12
"""Calls of the wait at which a child is sent SIGTERM (SIGTERM at calls 5 to 12 deadlocked the Event-based wait)."""
ALONE_WITHIN = 3.0
"""Seconds, from when every child waits, for those whose own SIGTERM came inside the wait to end; the others
get one from here then."""
STOPPED_WITHIN = 30.0
"""Seconds a child has to end after SIGTERM from here (it takes milliseconds; a deadlocked one never does)."""

CHILD = r"""
import faulthandler, os, signal, sys
from device.runner import StopSignal

faulthandler.register(signal.SIGUSR1, all_threads=True)
target = int(sys.argv[1])
calls = 0

def hook(frame, event, arg):
    global calls
    if event in ("call", "c_call"):
        calls += 1
        if calls == target:
            sys.setprofile(None)  # the handler's own calls are not counted: once is the point
            os.write(2, b"signalled inside the wait\n")
            os.kill(os.getpid(), signal.SIGTERM)

stop = StopSignal()
print("armed", flush=True)
sys.setprofile(hook)
stop.wait()
sys.setprofile(None)
stop.close()
print("stopped", flush=True)
"""


def test_sigterm_at_any_step_of_the_wait_ends_it() -> None:
    children = {n: subprocess.Popen([sys.executable, "-c", CHILD, str(n)], env=child_env(), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for n in range(1, CALLS + 1)}
    try:
        for child in children.values():
            assert child.stdout is not None and child.stdout.readline() == "armed\n", child.communicate()[1][-1500:]
        waiting = _still_running(children, ALONE_WITHIN)
        for n in waiting:
            children[n].send_signal(signal.SIGTERM)  # its wait made fewer than n calls: it is blocked, waiting
        stuck = _still_running({n: children[n] for n in waiting}, STOPPED_WITHIN)
        for n in stuck:
            children[n].send_signal(signal.SIGUSR1)  # its threads' stacks, into its stderr
        _still_running({n: children[n] for n in stuck}, ALONE_WITHIN)
        said = {n: _ended(child) for n, child in children.items()}
        assert not stuck, "SIGTERM did not end the wait:\n" + "\n".join(f"SIGTERM at call {n}: {said[n][1][-1500:]}"
                                                                         for n in stuck)
        for n, child in children.items():
            assert (child.returncode, said[n][0]) == (0, "stopped\n"), f"call {n}: exit {child.returncode}: {said[n][1]}"
    finally:
        for child in children.values():
            if child.poll() is None:
                child.kill()
            child.communicate()


def _ended(child: subprocess.Popen[str]) -> tuple[str, str]:
    """What the child wrote to stdout after ``armed``, and to stderr; killed first if it still runs."""
    if child.poll() is None:
        child.kill()
    child.wait()
    assert child.stdout is not None and child.stderr is not None
    return child.stdout.read(), child.stderr.read()


def _still_running(children: dict[int, subprocess.Popen[str]], within: float) -> list[int]:
    """The children (by N) that have not ended ``within`` seconds from now."""
    until = time.monotonic() + within
    for child in children.values():
        try:
            child.wait(max(0.0, until - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    return [n for n, child in children.items() if child.poll() is None]


@pytest.mark.parametrize("signalled", [False, True])
def test_close_gives_sigterm_back_its_earlier_handling(signalled: bool) -> None:
    """The object listens only between its making and ``close`` (an in-process caller keeps its own handler)."""
    from device.runner import StopSignal

    before = signal.getsignal(signal.SIGTERM)
    stop = StopSignal()
    assert signal.getsignal(signal.SIGTERM) is not before
    if signalled:
        signal.raise_signal(signal.SIGTERM)
        stop.wait()  # returns: the signal came before the wait
    stop.close()
    assert signal.getsignal(signal.SIGTERM) is before
    assert signal.set_wakeup_fd(-1) == -1  # no wakeup fd left behind
