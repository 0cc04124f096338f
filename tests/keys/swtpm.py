"""A software TPM for tests: Debian's ``swtpm`` as a socket TPM on loopback ports, reached through a TCTI string.

``SoftTpm.start(state_dir)`` runs ``swtpm socket --tpm2`` with its state in
``state_dir`` (a fresh directory is a new TPM with its own seeds; the same
directory again is the same TPM) and waits, against a named deadline, until
both its ports answer (the TCTI opens both). ``stop()`` fails when swtpm had
already ended by itself, with its exit status and what it wrote, so that a test
whose TPM vanished under it says so. ``clear()`` runs ``tpm2_clear`` (tpm2-tools): the
owner hierarchy gets a new seed, as a technician clearing the TPM in the
firmware would do. Tests skip, saying which Debian package is missing, when
``swtpm`` or ``tpm2-tools`` is not installed, or the ``tpm2-pytss`` module is not.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.process_station import free_port

READY_WITHIN = 10.0  # seconds for swtpm to listen on its ports

MISSING = (
    "the swtpm command is not installed (Debian packages swtpm, swtpm-tools)" if shutil.which("swtpm") is None else
    "the tpm2_clear command is not installed (Debian package tpm2-tools)" if shutil.which("tpm2_clear") is None else
    "the tpm2-pytss Python module is not installed (pip tpm2-pytss; Debian libtss2-dev to build it)"
    if importlib.util.find_spec("tpm2_pytss") is None else None)
needs_swtpm = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


class SoftTpm:
    """One running ``swtpm`` process and the TCTI string that reaches it."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.port = _free_pair()
        self.ctrl = self.port + 1  # the swtpm TCTI finds the control port right after the command port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def tcti(self) -> str:
        return f"swtpm:host=127.0.0.1,port={self.port}"

    @classmethod
    def start(cls, state: Path) -> SoftTpm:
        tpm = cls(state)
        state.mkdir(parents=True, exist_ok=True)
        tpm.proc = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
             "--server", f"type=tcp,port={tpm.port},bindaddr=127.0.0.1",
             "--ctrl", f"type=tcp,port={tpm.ctrl},bindaddr=127.0.0.1", "--flags", "startup-clear,not-need-init"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + READY_WITHIN
        while True:
            if tpm.proc.poll() is not None:
                raise AssertionError(f"swtpm exited with status {tpm.proc.returncode}: {_said(tpm.proc)}")
            # swtpm listens on the control port first, then on the command port: wait for both
            if _answers(tpm.ctrl) and _answers(tpm.port):
                return tpm
            if time.monotonic() > deadline:
                tpm.stop()
                raise AssertionError(f"swtpm did not listen on ports {tpm.port} and {tpm.ctrl} within"
                                     f" {READY_WITHIN:g} s")
            _wait_a_little(tpm.proc)

    def clear(self) -> None:
        """``tpm2_clear``: a new owner seed, so every key made under the old one is gone."""
        done = subprocess.run(["tpm2_clear", "-T", self.tcti], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr

    def stop(self) -> None:
        """Stop swtpm (again: nothing). One that had ended by itself before is an error naming its exit status."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        ended = proc.poll()
        if ended is None:
            proc.terminate()
            proc.wait(timeout=10)
        said = _said(proc)
        if ended is not None:
            raise AssertionError(f"swtpm on port {self.port} had ended by itself (exit status {ended})"
                                 f" before the test stopped it: {said}")


def _said(proc: subprocess.Popen[bytes]) -> str:
    """What an ended swtpm wrote to its stderr; the pipe is closed."""
    if proc.stderr is None:
        return ""
    with proc.stderr:
        return proc.stderr.read().decode(errors="replace").strip()


def _answers(port: int) -> bool:
    """True when a connection to the loopback ``port`` is accepted."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    except OSError:
        return False
    return True


def _free_pair() -> int:
    """A free loopback port whose next port is free too."""
    for _ in range(100):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two free neighbouring ports on 127.0.0.1")


def _wait_a_little(proc: subprocess.Popen[bytes]) -> None:
    """Give swtpm a moment to bind its ports: wait on the process itself (it returns early if it exits)."""
    try:
        proc.wait(timeout=0.05)
    except subprocess.TimeoutExpired:
        pass
