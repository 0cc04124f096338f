"""The Debian 13 Pi image's RAUC patch (``provisioning/image/debian/rauc-dm-status.patch``): its status
comparison, compiled on the host as the patch writes it and called with the status lines kernels report.
Fast, no image build and no RAUC source (it runs in ``make test``).

The booted Pi update tests (``test_arm64_update.py``) show the patched RAUC mounting bundles under the 7.3
kernel, whose verified device reports ``V -``. What they cannot provoke is a corrupted device, which must
still be refused; that, and the status lines of earlier kernels and of dm-crypt, is checked here.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .vm import BUILD

PATCH = BUILD.parent / "rauc-dm-status.patch"

CASES = [
    # (the status the kernel reports, the status RAUC expects for the target, whether RAUC accepts it)
    ("V", "V", True),  # dm-verity before Linux 6.19: verified
    ("V -", "V", True),  # dm-verity since Linux 6.19: verified, second field
    ("C", "V", False),  # corruption found
    ("C -", "V", False),
    ("", "V", False),
    ("VV", "V", False),
    ("", "", True),  # dm-crypt: an empty status
    ("V", "", False),
]


def added_function(patch: str) -> str:
    """The C function the patch adds (its ``+`` lines from its signature to its closing brace)."""
    added = [line[1:] for line in patch.splitlines() if line.startswith("+") and not line.startswith("+++")]
    start = next(i for i, line in enumerate(added) if line.startswith("static gboolean dmstatus_is("))
    end = next(i for i in range(start, len(added)) if added[i] == "}")
    return "\n".join(added[start:end + 1])


def test_the_patch_compares_the_first_field_only(tmp_path: Path) -> None:
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler (apt-get install gcc)")
    patch = PATCH.read_text()
    # the patch replaces RAUC's whole-string comparison with the new function, at its one call
    assert "-\tif (g_strcmp0(setup.params, dmstatus_by_dmtype(dm->type)) != 0) {" in patch
    assert "+\tif (!dmstatus_is(setup.params, dmstatus_by_dmtype(dm->type))) {" in patch
    calls = "\n".join(
        f'\tprintf("%d\\n", dmstatus_is("{status}", "{expected}") ? 1 : 0);' for status, expected, _ in CASES)
    source = tmp_path / "dmstatus.c"
    source.write_text("#include <stdio.h>\n#include <string.h>\ntypedef int gboolean;\ntypedef char gchar;\n"
                      f"{added_function(patch)}\n\nint main(void)\n{{\n{calls}\n\treturn 0;\n}}\n")
    program = tmp_path / "dmstatus"
    subprocess.run([cc, "-Wall", "-Werror", "-o", str(program), str(source)], check=True, capture_output=True)
    said = subprocess.run([str(program)], check=True, capture_output=True, text=True).stdout.split()
    assert [answer == "1" for answer in said] == [accepted for _, _, accepted in CASES], list(zip(CASES, said, strict=False))
