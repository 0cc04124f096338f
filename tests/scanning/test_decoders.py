"""Decoders on a generated corpus, the frame skipper, the camera loop and the simulated camera.

The corpus holds QR (a CEC slip), Code128 (a PIN), DataMatrix (a TD1 MRZ) and
PDF417 (an AAMVA licence) at several module sizes, clean and with noise,
blur, rotation and low contrast. Each decoder's success rate per format and
variant is written to ``decoder-report.txt`` in the test's tmp dir and printed.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.core.documents import DocumentRules, Identified, parse_payload
from device.hardware.decoders import DecoderConfigError, load_decoder
from device.hardware.decoders.frames import FrameSkipper
from device.hardware.decoders.scenes import empty_scene, partly_covered, put
from device.hardware.decoders.texture import TextureGate
from device.hardware.decoders.zbar import ZbarDecoder
from device.hardware.decoders.zxing import ZxingDecoder
from device.hardware.interfaces import ScannerState, ScanRead
from device.hardware.scanners.camera import FAILED_READS_LOST, CameraSource
from device.hardware.scanners.imagefeed import add_noise, place
from device.hardware.scanners.samples import (
    DemoDocuments,
    Sample,
    corpus,
    corpus_payloads,
    demo_documents,
    render,
    write_samples,
)
from device.hardware.scanners.simcamera import SimCamera

from .conftest import STATION, VOTER
from .fakes import FakeCamera, FakeClock, Waits


@pytest.fixture(scope="module")
def documents(cec_key: Ed25519PrivateKey) -> DemoDocuments:
    return demo_documents(cec_key, STATION, VOTER)


def success_table(samples: list[Sample], decoders: dict[str, object]) -> dict[tuple[str, str, str], list[bool]]:
    table: dict[tuple[str, str, str], list[bool]] = defaultdict(list)
    for s in samples:
        for name, decoder in decoders.items():
            got = [r.text for r in decoder.decode(s.gray)]  # type: ignore[attr-defined]
            table[(name, s.fmt, s.variant)].append(s.text in got)
    return table


def write_report(table: dict[tuple[str, str, str], list[bool]], path: Path, title: str) -> str:
    lines = [title, f"{'decoder':8} {'format':11} {'variant':13} read"]
    for (name, fmt, variant), oks in sorted(table.items()):
        lines.append(f"{name:8} {fmt:11} {variant:13} {sum(oks)}/{len(oks)}")
    for name in sorted({k[0] for k in table}):
        for fmt in sorted({k[1] for k in table}):
            oks = [ok for (n, f, _), v in table.items() if n == name and f == fmt for ok in v]
            lines.append(f"{name:8} {fmt:11} overall      {sum(oks) / len(oks):.0%}")
    text = "\n".join(lines)
    path.write_text(text + "\n")
    print(text)
    return text


def check_default_decoder(samples: list[Sample], table: dict[tuple[str, str, str], list[bool]]) -> None:
    for s in samples:
        if (s.fmt in ("qr", "code128") and s.variant == "clean") or (s.fmt == "pdf417" and s.level):
            oks = table[("zxing", s.fmt, s.variant)]
            assert all(oks), f"the default decoder missed a {s.variant} {s.fmt}"


def run_corpus(documents: DemoDocuments, height: int, width: int, tmp_path: Path) -> None:
    samples = list(corpus(corpus_payloads(documents), height, width))
    assert {s.fmt for s in samples} == {"qr", "code128", "datamatrix", "pdf417"}
    decoders = {"zxing": ZxingDecoder(), "zbar": ZbarDecoder(["qr", "code128"])}
    table = success_table(samples, decoders)
    report = write_report(table, tmp_path / "decoder-report.txt", f"corpus {width}x{height}, {len(samples)} frames")
    check_default_decoder(samples, table)
    assert "zbar     datamatrix  overall      0%" in report  # zbar cannot read it, and says so


def test_corpus_640x480(documents: DemoDocuments, tmp_path: Path) -> None:
    run_corpus(documents, 480, 640, tmp_path)


@pytest.mark.slow
def test_corpus_1280x720(documents: DemoDocuments, tmp_path: Path) -> None:
    run_corpus(documents, 720, 1280, tmp_path)


@pytest.mark.parametrize("size", [(480, 640), pytest.param((720, 1280), marks=pytest.mark.slow)])
def test_cheap_passes_never_cost_a_read_the_thorough_pass_makes(documents: DemoDocuments,
                                                                size: tuple[int, int]) -> None:
    decoder = ZxingDecoder()
    for s in corpus(corpus_payloads(documents), *size):
        thorough = [b.text for b in decoder.read_pass(s.gray, decoder.thorough)]
        if s.text in thorough:
            assert s.text in [r.text for r in decoder.decode(s.gray)], f"{s.fmt} {s.variant} lost"


def thorough_reads(decoder: ZxingDecoder, frame: np.ndarray) -> set[str]:
    return {b.text for b in decoder.read_pass(frame, decoder.thorough)}


@pytest.mark.parametrize("size", [(480, 640), (720, 1280)])
def test_an_empty_scene_is_rejected_without_calling_zxing(size: tuple[int, int],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(11)
    scenes = [empty_scene(*size, rng) for _ in range(12)]
    calls: list[object] = []
    real = zxingcpp.read_barcodes

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(zxingcpp, "read_barcodes", counted)
    decoder = ZxingDecoder()
    assert [decoder.decode(s) for s in scenes] == [[]] * len(scenes)
    assert calls == []
    assert all(thorough_reads(decoder, s) == set() for s in scenes)  # nothing was there to read
    assert len(calls) == len(scenes)  # the counter counts


@pytest.mark.parametrize("size", [(480, 640), (720, 1280)])
def test_a_code_anywhere_in_a_busy_scene_is_read_whenever_the_thorough_pass_reads_it(
        documents: DemoDocuments, size: tuple[int, int]) -> None:
    rng = np.random.default_rng(12)
    decoder, read = ZxingDecoder(), 0
    for fmt, text in corpus_payloads(documents).items():
        symbol = render(fmt, text, 3)
        h, w = symbol.shape
        for top, left in ((0, 0), (size[0] - h, size[1] - w), ((size[0] - h) // 3, (size[1] - w) // 2)):
            frame = put(symbol, empty_scene(*size, rng), top, left)
            if text in thorough_reads(decoder, frame):
                read += 1
                assert text in [r.text for r in decoder.decode(frame)], f"{fmt} at {top},{left} lost"
    assert read >= 10  # the scene leaves most codes readable, so the check above is not empty


@pytest.mark.parametrize("covered", [0.2, 0.4, 0.55, 0.8])
def test_a_partly_covered_code_is_decoded_and_never_read_less_than_by_the_thorough_pass(
        documents: DemoDocuments, covered: float) -> None:
    rng = np.random.default_rng(13)
    decoder = ZxingDecoder()
    for fmt, text in corpus_payloads(documents).items():
        symbol = render(fmt, text, 3)
        left = min(100, 640 - symbol.shape[1])
        frame = partly_covered(symbol, empty_scene(480, 640, rng), 60, left, covered)
        assert TextureGate().region(frame) is not None, fmt  # what is left of it looks like a code
        assert thorough_reads(decoder, frame) <= {r.text for r in decoder.decode(frame)}, fmt


def test_the_gate_crops_to_the_code_and_can_be_turned_off(documents: DemoDocuments) -> None:
    symbol = render("qr", documents.slip, 3)
    frame = put(symbol, empty_scene(720, 1280, np.random.default_rng(14)), 40, 900)
    region = TextureGate().region(frame)
    assert region is not None and region.left > 700 and region.bottom < 720
    assert region.crop(frame).size < frame.size / 4
    part = ZxingDecoder().code_like_part(frame)
    assert part is not None and part.shape == (region.bottom - region.top, region.right - region.left)
    assert ZxingDecoder(gate=None).code_like_part(frame) is frame
    assert [r.text for r in ZxingDecoder(gate=None).decode(frame)] == [documents.slip]


def test_a_barcode_held_on_its_side_is_read_before_the_thorough_pass(documents: DemoDocuments) -> None:
    decoder = ZxingDecoder(["qr", "code128"])
    frame = place(np.ascontiguousarray(np.rot90(render("code128", documents.pin, 3))), 480, 640)
    assert decoder.read_pass(frame, 0) == []
    assert [b.text for b in decoder.read_pass(frame, 1)] == [documents.pin]
    assert [(r.text, r.symbology) for r in decoder.decode(frame)] == [(documents.pin, "code128")]
    assert decoder.thorough == 2 and ZxingDecoder(["qr"]).thorough == 1


def test_decoded_corpus_payloads_parse(documents: DemoDocuments, cec_key: Ed25519PrivateKey) -> None:
    from .conftest import raw_public
    rules = DocumentRules(station_id=STATION, slip_key=raw_public(cec_key))
    decoder = ZxingDecoder()
    for fmt, text in corpus_payloads(documents).items():
        reads = decoder.decode(place(render(fmt, text, 3), 480, 640))
        assert len(reads) == 1 and reads[0].symbology == fmt
        assert isinstance(parse_payload(reads[0].text, rules), Identified)


def test_decoders_are_limited_to_configured_formats(documents: DemoDocuments) -> None:
    frame = place(render("qr", documents.slip, 3), 480, 640)
    assert ZxingDecoder(["code128"]).decode(frame) == []
    assert ZbarDecoder(["code128"]).decode(frame) == []
    assert [r.symbology for r in load_decoder("zbar", ["qr"]).decode(frame)] == ["qr"]


@pytest.mark.parametrize(("name", "formats", "message"), [
    ("zbar", ["pdf417"], "zbar decoder cannot read pdf417"),
    ("zbar", ["datamatrix", "qr"], "cannot read datamatrix"),
    ("zxing", ["aztec"], "unknown barcode formats"),
    ("zxing", [], "no barcode formats"),
    ("quagga", ["qr"], "unknown decoder 'quagga'"),
])
def test_decoder_config_errors(name: str, formats: list[str], message: str) -> None:
    with pytest.raises(DecoderConfigError, match=message):
        load_decoder(name, formats)


# Frame skipping ------------------------------------------------------------------------

def test_skipper_skips_an_idle_noisy_camera_and_wakes_on_a_document(documents: DemoDocuments) -> None:
    rng = np.random.default_rng(3)
    empty = np.full((480, 640), 200, np.uint8)
    skipper = FrameSkipper()
    idle = [skipper.wants(add_noise(empty, 3.0, rng)) for _ in range(30)]
    assert idle[0] and sum(idle) == 1 + skipper.settle
    card = place(render("qr", documents.slip, 3), 480, 640)
    assert skipper.wants(card)
    after = [skipper.wants(card) for _ in range(10)]
    assert sum(after) == skipper.settle


def test_skipper_resets_on_a_new_frame_size() -> None:
    skipper = FrameSkipper(settle=0)
    assert skipper.wants(np.zeros((480, 640), np.uint8)) and not skipper.wants(np.zeros((480, 640), np.uint8))
    assert skipper.wants(np.zeros((720, 1280), np.uint8))


# Camera loop and simulated camera ------------------------------------------------------------

def test_camera_loop_reads_skips_and_reconnects(documents: DemoDocuments) -> None:
    card = place(render("code128", documents.pin, 3), 480, 640)
    blank = np.full((480, 640), 235, np.uint8)
    cameras = [FakeCamera([blank, card, card, card, card, card, card]), None, FakeCamera([card])]
    opened: list[FakeCamera] = []

    def opener() -> FakeCamera | None:
        cam = cameras.pop(0) if cameras else None
        if cam is not None:
            opened.append(cam)
        return cam

    clock = FakeClock()
    reads: list[ScanRead] = []
    states: list[ScannerState] = []
    source = CameraSource(decoder=ZxingDecoder(), opener=opener, skipper=FrameSkipper(settle=1),
                          wait=Waits(clock, limit=2))
    source.attach(reads.append, states.append)
    source.run()
    assert [r.text for r in reads] == [documents.pin] * 3  # the change, one settle frame, the new camera
    assert all(r.source == "camera/zxing" for r in reads)
    assert source.skipper.skipped >= 4
    assert states == [ScannerState.CONNECTED, ScannerState.DISCONNECTED, ScannerState.CONNECTED,
                      ScannerState.DISCONNECTED]
    assert all(cam.closed for cam in opened) and FAILED_READS_LOST > 1


def test_sim_camera_reads_every_demo_image(documents: DemoDocuments, cec_key: Ed25519PrivateKey,
                                          tmp_path: Path) -> None:
    from .conftest import raw_public
    rules = DocumentRules(station_id=STATION, slip_key=raw_public(cec_key))
    paths = write_samples(tmp_path / "demo", documents)
    assert set(paths) == {"pin", "td1", "td3", "aamva", "slip"}
    camera = SimCamera(decoder=load_decoder("zxing"))
    reads: list[ScanRead] = []
    states: list[ScannerState] = []
    camera.start(reads.append, states.append)
    schemes = []
    for name, path in paths.items():
        got = camera.feed_image(path)
        assert len(got) == 1, name
        result = parse_payload(got[0].text, rules)
        assert isinstance(result, Identified), name
        schemes.append(result.scheme)
    assert schemes == ["pin", "mrz-td1", "mrz-td3", "aamva", "slip"] and len(reads) == 5
    camera.unplug()
    assert camera.feed_image(paths["pin"]) == [] and camera.state() is ScannerState.DISCONNECTED
    camera.replug()
    assert states == [ScannerState.CONNECTED, ScannerState.DISCONNECTED, ScannerState.CONNECTED]
