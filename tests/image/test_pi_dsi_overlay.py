"""The Raspberry Pi image's own device-tree overlay for the official 7-inch DSI touchscreen
(``provisioning/image/debian/pi/overlays/vc4-kms-dsi-7inch.dts``, compiled by ``pi/dtoverlays.sh``), checked
against Debian's real Pi 4 device tree: fast checks that need no build and no virtual machine (they run in
``make test``).

NOT VERIFIED ON HARDWARE: nothing here ran on a Raspberry Pi with the panel. These tests compile the overlay
with Debian's ``dtc``, merge it into Debian's ``bcm2711-rpi-4-b.dtb`` with ``fdtoverlay`` (libfdt's overlay
code, not the Pi firmware's own) and read the merged tree with ``fdtget``: they show the tree the kernel
would get is wired as the drivers' bindings describe, not that the firmware applies the overlay the same way
or that the panel lights and the touch controller answers.

Debian's ``bcm2711-rpi-4-b.dtb`` comes from where the image build put it: the Pi image's boot partition
(``build/image/arm64/pollbox-arm64.img``), else the arm64 kernel package in the build's package cache. With
neither on the machine the tests that need it are skipped, naming both (they never pass without the dtb);
without Debian's device-tree-compiler (``dtc``, ``fdtoverlay``, ``fdtget``) every test is skipped, naming it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .vm import IMAGE_DIR, REPO, image_cache, run

PI = REPO / "provisioning" / "image" / "debian" / "pi"
SCRIPT = PI / "dtoverlays.sh"
OVERLAY = PI / "overlays" / "vc4-kms-dsi-7inch.dts"
PI_IMAGE = IMAGE_DIR / "arm64" / "pollbox-arm64.img"
DTB = "bcm2711-rpi-4-b.dtb"

DSI1 = "/soc/dsi@7e700000"
I2C0 = "/soc/i2c@7e205000"
I2C1 = "/soc/i2c@7e804000"
"""BSC1, the 40-pin header's I2C (GPIO 2/3): the overlay must leave it alone."""
GPIO = "/soc/gpio@7e200000"
PANEL = f"{I2C0}/panel@45"
TOUCH = f"{I2C0}/touchscreen@38"

TOOLS = ("dtc", "fdtoverlay", "fdtget")
missing = [tool for tool in TOOLS if shutil.which(tool) is None]
pytestmark = pytest.mark.skipif(bool(missing), reason=f"no {', '.join(missing)}: install Debian's "
                                "device-tree-compiler (apt-get install device-tree-compiler)")


def compile_overlays(out: Path, script: Path = SCRIPT, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    return subprocess.run(["/bin/bash", str(script), str(out)], capture_output=True, text=True, env=env)


def shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def debian_dtb(dest: Path) -> tuple[Path, str]:
    """Debian's Pi 4 device tree and where it was taken from, or a skip naming what is missing."""
    dtb = dest / DTB
    if PI_IMAGE.is_file():
        boot_a = json.loads(run(["sfdisk", "--json", str(PI_IMAGE)]))["partitiontable"]["partitions"][1]
        run(["mcopy", "-n", "-i", f"{PI_IMAGE}@@{int(boot_a['start']) * 512}", f"::/{DTB}", str(dtb)])
        return dtb, f"the Pi image's boot partition ({shown(PI_IMAGE)})"
    debs = sorted((image_cache() / "debs-arm64").glob("linux-image-*-arm64_*_arm64.deb"))
    if debs:
        tar = subprocess.run(f"dpkg-deb --fsys-tarfile '{debs[-1]}' | tar -x -O --wildcards '*/broadcom/{DTB}'",
                             shell=True, capture_output=True, check=True)
        dtb.write_bytes(tar.stdout)
        return dtb, f"the kernel package {debs[-1].name} in the image build's package cache"
    pytest.skip(f"no Debian {DTB}: neither the Pi image {shown(PI_IMAGE)} (make image ARCH=arm64) nor "
                f"an arm64 linux-image package in {image_cache() / 'debs-arm64'}")


@pytest.fixture(scope="module")
def dtbo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("overlays")
    done = compile_overlays(out)
    assert done.returncode == 0, done.stderr
    return out / "vc4-kms-dsi-7inch.dtbo"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dtb, source = debian_dtb(tmp_path_factory.mktemp("debian-dtb"))
    print(f"Debian's {DTB} from {source}")
    return dtb


@pytest.fixture(scope="module")
def merged(base: Path, dtbo: Path) -> Path:
    out = dtbo.parent / "merged.dtb"
    run(["fdtoverlay", "-i", str(base), "-o", str(out), str(dtbo)])
    return out


def get(dtb: Path, node: str, prop: str, kind: str = "") -> str:
    return run(["fdtget", *(["-t", kind] if kind else []), str(dtb), node, prop]).strip()


def has(dtb: Path, node: str, prop: str) -> bool:
    return prop in run(["fdtget", "-p", str(dtb), node]).split()


def statuses(dtb: Path) -> dict[str, str]:
    """Every node's path -> its status ("okay" when it has none), read off dtc's decompiled text."""
    text = run(["dtc", "-q", "-I", "dtb", "-O", "dts", str(dtb)])
    found: dict[str, str] = {}
    path: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if line.endswith("{"):
            name = line[:-1].strip().split(":")[-1].strip()
            path.append("" if name == "/" else name)
            found["/".join(path) or "/"] = "okay"
        elif line == "};":
            path.pop()
        elif match := re.fullmatch(r'status = "([^"]*)";', line):
            found["/".join(path) or "/"] = match.group(1)
    return found


def phandles(dtb: Path) -> list[str]:
    text = run(["dtc", "-q", "-I", "dtb", "-O", "dts", str(dtb)])
    return re.findall(r"^\s*phandle = <(0x[0-9a-f]+)>;", text, re.MULTILINE)


def test_the_script_compiles_each_overlay_source_into_a_dtbo(tmp_path: Path) -> None:
    done = compile_overlays(tmp_path / "out")
    assert done.returncode == 0, done.stderr
    sources = sorted(p.stem for p in (PI / "overlays").glob("*.dts"))
    assert "vc4-kms-dsi-7inch" in sources
    assert sorted(os.listdir(tmp_path / "out")) == [f"{name}.dtbo" for name in sources]
    blob = (tmp_path / "out" / "vc4-kms-dsi-7inch.dtbo").read_bytes()
    assert blob[:4] == bytes.fromhex("d00dfeed"), "not a flattened device tree"
    assert "warnings" not in done.stderr, done.stderr


def test_every_fragment_targets_a_path_that_debian_s_tree_has(base: Path, dtbo: Path) -> None:
    # Debian's tree has no __symbols__ (no labels an overlay could name), so fragments must use target-path
    assert "__symbols__" not in run(["fdtget", "-l", str(base), "/"]).split()
    fragments = [n for n in run(["fdtget", "-l", str(dtbo), "/"]).split() if n.startswith("fragment@")]
    assert len(fragments) == 3, fragments
    for fragment in fragments:
        assert not has(dtbo, f"/{fragment}", "target"), f"{fragment} names a label Debian's tree lacks"
        target = get(dtbo, f"/{fragment}", "target-path")
        run(["fdtget", "-l", str(base), target])  # fails, naming the path, if Debian's tree has no such node


def test_dsi1_is_enabled_and_its_endpoint_and_the_panel_s_point_at_each_other(base: Path, merged: Path) -> None:
    assert get(base, DSI1, "status") == "disabled", "Debian's tree enables DSI1 itself: the overlay is moot"
    assert get(merged, DSI1, "compatible") == "brcm,bcm2711-dsi1"
    assert get(merged, DSI1, "status") == "okay"
    dsi_end, panel_end = f"{DSI1}/port/endpoint", f"{PANEL}/port/endpoint"
    assert get(merged, dsi_end, "remote-endpoint", "x") == get(merged, panel_end, "phandle", "x")
    assert get(merged, panel_end, "remote-endpoint", "x") == get(merged, dsi_end, "phandle", "x")
    # port 0, endpoint 0: what vc4 asks the graph for (a port or endpoint without reg counts as 0)
    assert not has(merged, f"{DSI1}/port", "reg") and not has(merged, dsi_end, "reg")
    numbers = phandles(merged)
    assert len(numbers) == len(set(numbers)), "the overlay's phandles collide with the base tree's"


def test_the_panel_and_the_touch_controller_sit_on_bsc0_pinned_to_gpio_44_45(base: Path, merged: Path) -> None:
    assert "brcm,bcm2711-i2c" in get(merged, I2C0, "compatible").split()
    assert get(merged, I2C0, "status") == "okay"
    assert get(merged, PANEL, "compatible") == "raspberrypi,7inch-touchscreen-panel"
    assert get(merged, PANEL, "reg", "x") == "45"
    assert get(merged, TOUCH, "compatible") == "edt,edt-ft5406"
    assert get(merged, TOUCH, "reg", "x") == "38"
    assert (get(merged, TOUCH, "touchscreen-size-x"), get(merged, TOUCH, "touchscreen-size-y")) == ("800", "480")
    assert has(merged, TOUCH, "touchscreen-inverted-x") and has(merged, TOUCH, "touchscreen-inverted-y")
    # the bus's pins: the one pin group whose phandle pinctrl-0 names, in the GPIO controller, is 44/45 alt1
    pinctrl = get(merged, I2C0, "pinctrl-0", "x")
    groups = [g for g in run(["fdtget", "-l", str(merged), GPIO]).split()
              if has(merged, f"{GPIO}/{g}", "phandle") and get(merged, f"{GPIO}/{g}", "phandle", "x") == pinctrl]
    assert len(groups) == 1, groups
    assert get(merged, f"{GPIO}/{groups[0]}", "brcm,pins") == "44 45"
    assert get(merged, f"{GPIO}/{groups[0]}", "brcm,function") == "5"  # alt1: SDA0/SCL0 on GPIO 44/45
    assert get(base, I2C0, "pinctrl-0", "x") != pinctrl, "Debian's tree already pins BSC0 to the overlay's group"


def test_nothing_else_changes_status_and_the_header_i2c_is_untouched(base: Path, merged: Path) -> None:
    before, after = statuses(base), statuses(merged)
    changed = {node for node in before if before[node] != after.get(node)}
    assert changed == {DSI1}, changed
    added = set(after) - set(before)
    assert added == {f"{DSI1}/port", f"{DSI1}/port/endpoint", PANEL, f"{PANEL}/port", f"{PANEL}/port/endpoint",
                     TOUCH, f"{GPIO}/pollbox-i2c0-gpio44", "/__symbols__"}, added
    for prop in run(["fdtget", "-p", str(base), I2C1]).split():
        assert get(merged, I2C1, prop, "x") == get(base, I2C1, prop, "x"), prop


@pytest.fixture()
def scratch_pi(tmp_path: Path) -> Iterator[Path]:
    """A copy of the script next to an overlays/ folder of the test's own (the script compiles its own folder)."""
    pi = tmp_path / "pi"
    (pi / "overlays").mkdir(parents=True)
    shutil.copy2(SCRIPT, pi / "dtoverlays.sh")
    shutil.copy2(OVERLAY, pi / "overlays" / OVERLAY.name)
    yield pi


def test_a_source_that_does_not_compile_is_named_and_leaves_no_dtbo(scratch_pi: Path, tmp_path: Path) -> None:
    broken = scratch_pi / "overlays" / "broken.dts"
    broken.write_text('/dts-v1/;\n/plugin/;\n/ {\n\tfragment@0 {\n\t\ttarget-path = "/soc";\n\t\t__overlay__ {\n'
                      '\t\t\tstatus = "okay"\n\t\t};\n\t};\n};\n')  # no semicolon after "okay"
    out = tmp_path / "out"
    out.mkdir()
    (out / "broken.dtbo").write_bytes(b"an older build's file")
    done = compile_overlays(out, scratch_pi / "dtoverlays.sh")
    assert done.returncode == 2
    assert f"dtoverlays: the overlay {broken} does not compile" in done.stderr, done.stderr
    assert "syntax error" in done.stderr, done.stderr  # dtc's own words follow, with the line
    assert not (out / "broken.dtbo").exists(), "a .dtbo is left under the broken source's name"
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [], "a temporary file is left behind"


def test_without_dtc_the_script_says_what_to_install(tmp_path: Path) -> None:
    bare = tmp_path / "bin"  # a PATH with no dtc (the script needs nothing else before that check)
    bare.mkdir()
    done = compile_overlays(tmp_path / "out", path=str(bare))
    assert done.returncode == 2
    assert "dtc (the device-tree compiler) is not installed" in done.stderr, done.stderr
    assert "apt-get install device-tree-compiler" in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


def test_the_script_without_an_output_folder_says_how_to_call_it() -> None:
    done = subprocess.run(["/bin/bash", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 2 and "usage: dtoverlays.sh OUT-DIR" in done.stderr, done.stderr


def test_without_the_image_the_dtb_comes_from_the_package_cache(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    if not sorted((image_cache() / "debs-arm64").glob("linux-image-*-arm64_*_arm64.deb")):
        pytest.skip(f"no arm64 kernel package in {image_cache() / 'debs-arm64'} (an arm64 image build fills it)")
    monkeypatch.setattr(sys.modules[__name__], "PI_IMAGE", tmp_path / "no-image.img")
    dtb, source = debian_dtb(tmp_path)
    assert "package cache" in source, source
    assert get(dtb, "/", "model") == "Raspberry Pi 4 Model B"


def test_with_no_debian_dtb_anywhere_the_tests_skip_naming_both_places(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "PI_IMAGE", tmp_path / "no-image.img")
    monkeypatch.setenv("POLLBOX_IMAGE_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(pytest.skip.Exception, match=r"no Debian bcm2711-rpi-4-b\.dtb: neither the Pi image .*"
                       r"make image ARCH=arm64.* nor an arm64 linux-image package in .*empty-cache"):
        debian_dtb(tmp_path)
