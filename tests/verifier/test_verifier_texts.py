"""Every sentence of the verifier page exists in Kyrgyz, Russian and English, and ky/ru hold no English."""

from __future__ import annotations

import re
from pathlib import Path

TEXTS = Path(__file__).resolve().parents[2] / "verifier" / "src" / "i18n.js"
ENTRY = re.compile(r'^\s{4}(\w+): "((?:[^"\\]|\\.)*)",$', re.M)
LATIN_ALLOWED = {"QR", "pollbox", "Ed25519", "UTC", "n", "source", "seq", "index", "size", "at"}


def blocks() -> dict[str, dict[str, str]]:
    text = TEXTS.read_text(encoding="utf-8")
    out = {}
    for lang, body in re.findall(r"^  (ky|ru|en): \{\n(.*?)^  \},", text, re.M | re.S):
        out[lang] = dict(ENTRY.findall(body))
    return out


def test_three_languages_with_the_same_sentences() -> None:
    found = blocks()
    assert sorted(found) == ["en", "ky", "ru"]
    assert set(found["ky"]) == set(found["ru"]) == set(found["en"]) and len(found["en"]) > 40
    for key in found["en"]:
        placeholders = {lang: set(re.findall(r"\{(\w+)\}", found[lang][key])) for lang in found}
        assert placeholders["ky"] == placeholders["ru"] == placeholders["en"], key


def test_no_english_in_kyrgyz_or_russian() -> None:
    for lang in ("ky", "ru"):
        for key, sentence in blocks()[lang].items():
            latin = set(re.findall(r"[A-Za-z][A-Za-z0-9]*", sentence)) - LATIN_ALLOWED
            assert not latin, (lang, key, latin)


def test_every_reason_the_checks_raise_has_a_sentence() -> None:
    source = "".join((TEXTS.parent / name).read_text(encoding="utf-8") for name in ("core.js", "app.js"))
    codes = set(re.findall(r'new (?:C\.)?Invalid\("(\w+)"', source)) - {"bad_head", "bad_proof"}  # proof notes
    assert {"altered", "foreign_key", "revoked_key", "wrong_election", "not_ours", "truncated", "extra_bytes",
            "training", "no_ed25519", "registry_bad"} <= codes
    for lang, sentences in blocks().items():
        missing = {code for code in codes | {"chain_broken"} if f"reason_{code}" not in sentences}
        assert not missing, (lang, missing)
