"""The shell steps of ``docs/protocol.md``, for the tests that run them verbatim with the openssl command line."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"


def section(title_start: str) -> str:
    """The text of the section whose ``##`` title starts with ``title_start``, up to the next one."""
    text = DOC.read_text()
    start = text.index(f"\n## {title_start}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else len(text)]


def shell_blocks(text: str) -> list[str]:
    """Every ```` ```sh ```` block of ``text``, in order."""
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)
