"""The observers' verifier page checks a P-256 record (a unit whose key is in a TPM) as it checks Ed25519.

The page is built (``verifier.build``) with a CEC-signed registry holding one
P-256 unit and one Ed25519 unit, opened from its file in Debian's Chromium at
phone size with the network off, and asked to check lines: WebCrypto's ECDSA
P-256 verifies the TPM unit's close report; an altered one, one whose ``alg``
is not its key's, and one signed by another P-256 key are refused as altered.
A report that names the software that signed it shows the version and code hash.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from keys_kit import AnyUnit, P256Key

from protocol.canonical import canonical
from protocol.envelope import SignedRecord
from protocol.keys import public_b64
from receiver.registry import Registry
from tests.browser_kit import PHONE, launch, playwright_or_skip

pytestmark = pytest.mark.browser

CLOSE = {"identified": 812, "ballots": 811, "difference": -1, "alarms_total": 2, "alarms_open": 0,
         "journal_seq": 1711, "journal_hash": "5e" * 32}

sync_api = playwright_or_skip()


@pytest.fixture(scope="module")
def units() -> tuple[AnyUnit, AnyUnit]:
    return AnyUnit("KG-0001", key=P256Key()), AnyUnit("KG-0002")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory, units: tuple[AnyUnit, AnyUnit]) -> Iterator[Any]:
    from verifier.build import build

    tmp = tmp_path_factory.mktemp("verifier-p256")
    cec = Ed25519PrivateKey.generate()
    Registry([u.entry() for u in units]).sign_and_save(tmp / "registry.json", cec)
    trust = {"cec_key": public_b64(cec.public_key()), "receiver_key": None, "election": None,
             "receiver_url": None, "registry": (tmp / "registry.json").read_text(), "source": "built"}
    build(tmp / "page", trust)
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        context = browser.new_context(offline=True, **PHONE)
        opened = context.new_page()
        opened.goto((tmp / "page" / "verify.html").as_uri())
        opened.evaluate("window.pollboxVerifier.ready")
        yield opened
        browser.close()


def check(page: Any, line: str) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate("async (l) => { const r = await window.pollboxVerifier.check(l); "
                                           "return {ok: r.ok, code: r.code}; }", line)
    return result


def close_report(unit: AnyUnit) -> SignedRecord:
    return unit.record("polls_closed", CLOSE, journal=False)


def test_the_page_verifies_a_p256_close_report_and_an_ed25519_one(page: Any, units: tuple[AnyUnit, AnyUnit]) -> None:
    tpm_unit, file_unit = units
    p256_line = close_report(tpm_unit).line()
    assert '"alg":"p256"' in p256_line
    assert check(page, p256_line)["ok"] is True
    assert check(page, close_report(file_unit).line())["ok"] is True


def test_the_page_refuses_altered_and_mismatched_p256_records(page: Any, units: tuple[AnyUnit, AnyUnit]) -> None:
    tpm_unit, file_unit = units
    record = close_report(tpm_unit)
    altered = record.line().replace('"ballots":811', '"ballots":812')
    assert check(page, altered) == {"ok": False, "code": "altered"}
    impostor = P256Key()
    forged = SignedRecord(record.data, impostor.sign(record.data), record.fields)
    assert check(page, forged.line()) == {"ok": False, "code": "altered"}
    ed = close_report(file_unit)
    fields = dict(ed.fields, alg="p256")
    data = canonical(fields)
    lying = SignedRecord(data, file_unit.key.sign(data), fields)  # type: ignore[attr-defined]
    assert check(page, lying.line()) == {"ok": False, "code": "altered"}


def test_the_page_shows_the_software_a_close_report_names(page: Any, units: tuple[AnyUnit, AnyUnit]) -> None:
    tpm_unit, _ = units
    line = tpm_unit.record("polls_closed", {**CLOSE, "software_version": "0.1.0", "software_hash": "9f" * 32},
                           journal=False).line()
    assert check(page, line)["ok"] is True
    assert page.locator("#facts .software").inner_text().split("\t")[-1].strip() == "0.1.0 · " + "9f" * 8
    assert check(page, close_report(tpm_unit).line())["ok"] is True
    assert page.locator("#facts .software").count() == 0


def test_the_page_shows_the_running_system_a_close_report_names(page: Any, units: tuple[AnyUnit, AnyUnit]) -> None:
    tpm_unit, _ = units
    system = {"system_slot": "B", "system_version": "0.2.0+20261206", "system_hash": "c4" * 32}
    line = tpm_unit.record("polls_closed", {**CLOSE, "software_version": "0.1.0", "software_hash": "9f" * 32,
                                            **system}, journal=False).line()
    assert check(page, line)["ok"] is True
    assert page.locator("#facts .system").inner_text().split("\t")[-1].strip() == \
        "B · 0.2.0+20261206 · " + "c4" * 8
    assert page.locator("#facts .software").count() == 1
    assert check(page, close_report(tpm_unit).line())["ok"] is True
    assert page.locator("#facts .system").count() == 0
