"""Practice voter lists: valid, made-up rows in the documented CSV format.

For training technicians, demos, tests and the import benchmark. The numbers
follow the Kyrgyz PIN layout (sex digit, birth date DDMMYYYY, 5-digit serial)
and are drawn from a seeded generator, so a given seed always gives the same
file. None of them belongs to a real person except by coincidence, and the
names are invented.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from .voterlist import HEADER

SURNAMES = ("Asanov", "Bekova", "Choroev", "Dzhaparova", "Ermekov", "Isakova", "Kadyrov", "Mamytova",
            "Nurbekov", "Omurova", "Sadykov", "Toktogulova", "Usenov", "Zhumabaeva")
GIVEN = ("Aibek", "Aigul", "Bakyt", "Cholpon", "Daniyar", "Elnura", "Kanat", "Meerim", "Nurlan", "Saltanat",
         "Talant", "Zarina")


def sample_rows(station_id: str, count: int, seed: int = 1) -> list[list[str]]:
    """``count`` distinct valid rows for ``station_id``, list lines 1..count."""
    rng = random.Random(seed)
    seen: set[str] = set()
    rows: list[list[str]] = []
    while len(rows) < count:
        number = _pin(rng)
        if number in seen:
            continue
        seen.add(number)
        rows.append([number, rng.choice(SURNAMES), rng.choice(GIVEN), str(len(rows) + 1), station_id])
    return rows


def _pin(rng: random.Random) -> str:
    year = rng.randint(1930, 2007)
    return f"{rng.choice('12')}{rng.randint(1, 28):02d}{rng.randint(1, 12):02d}{year}{rng.randint(0, 99999):05d}"


def write_sample_csv(path: Path, station_id: str, count: int, seed: int = 1) -> list[list[str]]:
    """Write a practice list to ``path`` and return its rows (the numbers stay in memory only)."""
    rows = sample_rows(station_id, count, seed)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return rows
