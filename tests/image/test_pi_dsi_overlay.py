"""The Raspberry Pi image's own device-tree overlay for the official 7-inch DSI touchscreen
(``provisioning/image/debian/pi/overlays/SUITE/vc4-kms-dsi-7inch.dts``, one per Debian suite, compiled by
``pi/dtoverlays.sh``), each checked against the real Pi 4 device tree of its suite's Pi kernel: fast checks
that need no image build and no virtual machine (they run in ``make test``).

The two trees describe the display connector's I2C bus differently. Bookworm's 6.1 tree leaves BSC0 on
GPIO 0/1, so its overlay moves BSC0 to GPIO 44/45 and puts the panel's devices on it. Trixie-backports' tree
puts BSC0 behind an I2C pin switch (``/i2c-mux0``, ``i2c-mux-pinctrl``) whose bus 1 is GPIO 44/45, so its
overlay moves no pins and puts the devices on that bus (``BUS``).

NOT VERIFIED ON HARDWARE: nothing here ran on a Raspberry Pi with the panel. These tests compile the overlay
with Debian's ``dtc``, merge it into Debian's ``bcm2711-rpi-4-b.dtb`` with ``fdtoverlay`` (libfdt's overlay
code, not the Pi firmware's own) and read the merged tree with ``fdtget``: they show the tree the kernel
would get is wired as the drivers' bindings describe, not that the firmware applies the overlay the same way
or that the panel lights and the touch controller answers.

Debian's trees come straight from Debian's archive (``debian_archive``): for each suite the Pi image is built
for, the arm64 kernel package that suite's image ships (bookworm: the newest of bookworm, bookworm-updates and
bookworm-security, a 6.1 kernel; trixie: trixie-backports'), checked against the SHA256 of its Packages entry,
with only the tree kept under ``build/pi-dtb/``. Every tree check runs once per suite and prints the package
and version its tree came from. When the archive does not answer, the tests that need a tree are skipped,
naming the URL that failed (they never pass without the tree); without Debian's device-tree-compiler (``dtc``,
``fdtoverlay``, ``fdtget``) every test is skipped, naming it.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import lzma
import os
import re
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from .debian_archive import CACHE, DTB, SUITE_DISTS, Refused, Unreachable, compare_versions, pi4_tree
from .vm import REPO, run

PI = REPO / "provisioning" / "image" / "debian" / "pi"
SCRIPT = PI / "dtoverlays.sh"
OVERLAY = PI / "overlays" / "bookworm" / "vc4-kms-dsi-7inch.dts"
"""The overlay the script tests below copy (any suite's serves them)."""

DSI1 = "/soc/dsi@7e700000"
I2C0 = "/soc/i2c@7e205000"
I2C1 = "/soc/i2c@7e804000"
"""BSC1, the 40-pin header's I2C (GPIO 2/3): the overlay must leave it alone."""
GPIO = "/soc/gpio@7e200000"
MUX = "/i2c-mux0"
BUS = {"bookworm": I2C0, "trixie": f"{MUX}/i2c@1"}
"""Per suite, the node the panel's devices sit on: BSC0 itself, or the pin switch's bus on GPIO 44/45."""
FRAGMENTS = {"bookworm": 3, "trixie": 2}

TOOLS = ("dtc", "fdtoverlay", "fdtget")
missing = [tool for tool in TOOLS if shutil.which(tool) is None]
pytestmark = pytest.mark.skipif(bool(missing), reason=f"no {', '.join(missing)}: install Debian's "
                                "device-tree-compiler (apt-get install device-tree-compiler)")


def compile_overlays(out: Path, suite: str = "bookworm", script: Path = SCRIPT,
                     path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    return subprocess.run(["/bin/bash", str(script), suite, str(out)], capture_output=True, text=True, env=env)


def debian_tree(suite: str, cache: Path = CACHE) -> tuple[Path, str]:
    """Debian's Pi 4 device tree of the suite's Pi kernel and the package it came from, or a skip naming the
    URL that did not answer."""
    try:
        dtb, package = pi4_tree(suite, cache)
    except Unreachable as error:
        pytest.skip(f"Debian's archive did not answer, so there is no {suite} {DTB}: {error}")
    return dtb, f"{package.name} {package.version} ({package.url})"


@pytest.fixture(scope="module", params=sorted(SUITE_DISTS))
def suite(request: pytest.FixtureRequest) -> str:
    """The Debian suite whose overlay and Pi kernel's tree the tree checks run against."""
    return str(request.param)


@pytest.fixture(scope="module")
def dtbo(suite: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp(f"overlays-{suite}")
    done = compile_overlays(out, suite)
    assert done.returncode == 0, done.stderr
    return out / "vc4-kms-dsi-7inch.dtbo"


@pytest.fixture(scope="module")
def base(suite: str) -> Path:
    dtb, source = debian_tree(suite)
    print(f"{suite}: Debian's {DTB} from {source}")
    return dtb


@pytest.fixture(scope="module")
def merged(base: Path, dtbo: Path) -> Path:
    out = dtbo.parent / f"merged-{base.stem}.dtb"
    run(["fdtoverlay", "-i", str(base), "-o", str(out), str(dtbo)])
    return out


def get(dtb: Path, node: str, prop: str, kind: str = "") -> str:
    return run(["fdtget", *(["-t", kind] if kind else []), str(dtb), node, prop]).strip()


def has(dtb: Path, node: str, prop: str) -> bool:
    return prop in run(["fdtget", "-p", str(dtb), node]).split()


def properties(dtb: Path) -> dict[str, dict[str, str]]:
    """Every node's path -> its properties as dtc writes their values (a flag's value is "")."""
    text = run(["dtc", "-q", "-I", "dtb", "-O", "dts", str(dtb)])
    found: dict[str, dict[str, str]] = {}
    path: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if line.endswith("{"):
            name = line[:-1].strip().split(":")[-1].strip()
            path.append("" if name == "/" else name)
            found["/".join(path) or "/"] = {}
        elif line == "};":
            path.pop()
        elif line.endswith(";") and path:
            name, _, value = line[:-1].partition(" = ")
            found["/".join(path) or "/"][name] = value
    return found


def pin_users(dtb: Path, pins: set[int]) -> set[tuple[str, str]]:
    """(node, pinctrl-N) of every pin-control state that names a pin group holding one of ``pins``."""
    nodes = properties(dtb)
    groups = {int(props["phandle"].strip("<>"), 16): {int(pin, 16) for pin in props["brcm,pins"].strip("<>").split()}
              for props in nodes.values() if "phandle" in props and "brcm,pins" in props}
    return {(node, prop) for node, props in nodes.items() for prop, value in props.items()
            if re.fullmatch(r"pinctrl-\d+", prop)
            and any(groups.get(int(phandle, 16), set()) & pins for phandle in value.strip("<>").split())}


def statuses(dtb: Path) -> dict[str, str]:
    """Every node's path -> its status ("okay" when it has none)."""
    return {node: props.get("status", '"okay"').strip('"') for node, props in properties(dtb).items()}


def phandles(dtb: Path) -> list[str]:
    text = run(["dtc", "-q", "-I", "dtb", "-O", "dts", str(dtb)])
    return re.findall(r"^\s*phandle = <(0x[0-9a-f]+)>;", text, re.MULTILINE)


@pytest.mark.parametrize("suite", sorted(SUITE_DISTS))
def test_the_script_compiles_each_overlay_source_of_the_suite_into_a_dtbo(suite: str, tmp_path: Path) -> None:
    done = compile_overlays(tmp_path / "out", suite)
    assert done.returncode == 0, done.stderr
    sources = sorted(p.stem for p in (PI / "overlays" / suite).glob("*.dts"))
    assert "vc4-kms-dsi-7inch" in sources
    assert sorted(os.listdir(tmp_path / "out")) == [f"{name}.dtbo" for name in sources]
    blob = (tmp_path / "out" / "vc4-kms-dsi-7inch.dtbo").read_bytes()
    assert blob[:4] == bytes.fromhex("d00dfeed"), "not a flattened device tree"
    assert "warnings" not in done.stderr, done.stderr


def test_every_suite_the_image_builds_has_its_overlays_and_another_is_refused(tmp_path: Path) -> None:
    assert sorted(p.name for p in (PI / "overlays").iterdir() if p.is_dir()) == sorted(SUITE_DISTS)
    done = compile_overlays(tmp_path / "out", "sid")
    assert done.returncode == 2
    assert "no overlays for the Debian suite 'sid'" in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


def test_every_fragment_targets_a_path_that_debian_s_tree_has(suite: str, base: Path, dtbo: Path) -> None:
    # bookworm's tree has no __symbols__ (no labels an overlay could name), so fragments must use target-path
    # (trixie-backports' newer tree has them; a path serves both)
    if suite == "bookworm":
        assert "__symbols__" not in run(["fdtget", "-l", str(base), "/"]).split()
    fragments = [n for n in run(["fdtget", "-l", str(dtbo), "/"]).split() if n.startswith("fragment@")]
    assert len(fragments) == FRAGMENTS[suite], fragments
    for fragment in fragments:
        assert not has(dtbo, f"/{fragment}", "target"), f"{fragment} names a label Debian's tree lacks"
        target = get(dtbo, f"/{fragment}", "target-path")
        run(["fdtget", "-l", str(base), target])  # fails, naming the path, if Debian's tree has no such node


def test_dsi1_is_enabled_and_its_endpoint_and_the_panel_s_point_at_each_other(suite: str, base: Path,
                                                                              merged: Path) -> None:
    assert get(base, DSI1, "status") == "disabled", "Debian's tree enables DSI1 itself: the overlay is moot"
    assert get(merged, DSI1, "compatible") == "brcm,bcm2711-dsi1"
    assert get(merged, DSI1, "status") == "okay"
    dsi_end, panel_end = f"{DSI1}/port/endpoint", f"{BUS[suite]}/panel@45/port/endpoint"
    assert get(merged, dsi_end, "remote-endpoint", "x") == get(merged, panel_end, "phandle", "x")
    assert get(merged, panel_end, "remote-endpoint", "x") == get(merged, dsi_end, "phandle", "x")
    # port 0, endpoint 0: what vc4 asks the graph for (a port or endpoint without reg counts as 0)
    assert not has(merged, f"{DSI1}/port", "reg") and not has(merged, dsi_end, "reg")
    numbers = phandles(merged)
    assert len(numbers) == len(set(numbers)), "the overlay's phandles collide with the base tree's"


def devices_on(merged: Path, bus: str) -> None:
    """The panel's micro at 0x45 and the touch controller at 0x38 on ``bus``, described as their drivers'
    bindings ask."""
    panel, touch = f"{bus}/panel@45", f"{bus}/touchscreen@38"
    assert get(merged, panel, "compatible") == "raspberrypi,7inch-touchscreen-panel"
    assert get(merged, panel, "reg", "x") == "45"
    assert get(merged, touch, "compatible") == "edt,edt-ft5406"
    assert get(merged, touch, "reg", "x") == "38"
    assert (get(merged, touch, "touchscreen-size-x"), get(merged, touch, "touchscreen-size-y")) == ("800", "480")
    assert has(merged, touch, "touchscreen-inverted-x") and has(merged, touch, "touchscreen-inverted-y")


def pin_group(dtb: Path, phandle: str) -> str:
    """The one pin group in the GPIO controller whose phandle is ``phandle``."""
    groups = [g for g in run(["fdtget", "-l", str(dtb), GPIO]).split()
              if has(dtb, f"{GPIO}/{g}", "phandle") and get(dtb, f"{GPIO}/{g}", "phandle", "x") == phandle]
    assert len(groups) == 1, groups
    return f"{GPIO}/{groups[0]}"


@pytest.mark.parametrize("suite", ["bookworm"], indirect=True)
def test_on_bookworm_bsc0_moves_to_gpio_44_45_with_the_panel_s_devices_on_it(base: Path, merged: Path) -> None:
    assert "brcm,bcm2711-i2c" in get(merged, I2C0, "compatible").split()
    assert get(merged, I2C0, "status") == "okay"
    devices_on(merged, I2C0)
    # the bus's pins: the one pin group whose phandle pinctrl-0 names, in the GPIO controller, is 44/45 alt1
    pinctrl = get(merged, I2C0, "pinctrl-0", "x")
    group = pin_group(merged, pinctrl)
    assert get(merged, group, "brcm,pins") == "44 45"
    assert get(merged, group, "brcm,function") == "5"  # alt1: SDA0/SCL0 on GPIO 44/45
    assert get(base, I2C0, "pinctrl-0", "x") != pinctrl, "Debian's tree already pins BSC0 to the overlay's group"
    # GPIO 44/45 have one user, BSC0's default state: no other node (such as an i2c-mux-pinctrl switching BSC0
    # between pin pairs) takes them, and BSC0 has no second state that moves it elsewhere
    assert pin_users(merged, {44, 45}) == {(I2C0, "pinctrl-0")}, "other pin-control states take GPIO 44/45"
    assert get(merged, I2C0, "pinctrl-names") == "default"
    assert sorted(p for p in run(["fdtget", "-p", str(merged), I2C0]).split() if p.startswith("pinctrl-")) == \
        ["pinctrl-0", "pinctrl-names"]


@pytest.mark.parametrize("suite", ["trixie"], indirect=True)
def test_on_trixie_the_panel_s_devices_sit_on_the_pin_switch_s_gpio_44_45_bus(base: Path, merged: Path) -> None:
    # the switch: BSC0 is its parent, and its state 1 (bus i2c@1) is the pin group on GPIO 44/45, alt1
    assert get(merged, MUX, "compatible") == "i2c-mux-pinctrl"
    assert get(merged, MUX, "i2c-parent", "x") == get(merged, I2C0, "phandle", "x")
    assert get(merged, I2C0, "status") == "okay" and statuses(merged)[MUX] == "okay"
    assert get(merged, f"{MUX}/i2c@1", "reg", "x") == "1"
    group = pin_group(merged, get(merged, MUX, "pinctrl-1", "x"))
    assert get(merged, group, "brcm,pins") == "44 45"
    assert get(merged, group, "brcm,function") == "5"  # alt1: SDA0/SCL0 on GPIO 44/45
    devices_on(merged, BUS["trixie"])
    assert not [n for n in run(["fdtget", "-l", str(merged), I2C0]).split()], "devices on BSC0 outside the switch"
    # the overlay moves no pins: GPIO 44/45 keep the one user the base tree gives them, the switch's state 1
    assert pin_users(merged, {44, 45}) == pin_users(base, {44, 45}) == {(MUX, "pinctrl-1")}


def test_nothing_else_changes_status_and_the_header_i2c_is_untouched(suite: str, base: Path, merged: Path) -> None:
    before, after = statuses(base), statuses(merged)
    changed = {node for node in before if before[node] != after.get(node)}
    assert changed == {DSI1}, changed
    added = set(after) - set(before)
    symbols = set() if "/__symbols__" in before else {"/__symbols__"}  # the overlay's labels, merged into the tree's
    pins = {f"{GPIO}/pollbox-i2c0-gpio44"} if suite == "bookworm" else set()  # bookworm's own pin group
    panel = f"{BUS[suite]}/panel@45"
    assert added == {f"{DSI1}/port", f"{DSI1}/port/endpoint", panel, f"{panel}/port", f"{panel}/port/endpoint",
                     f"{BUS[suite]}/touchscreen@38"} | pins | symbols, added
    for prop in run(["fdtget", "-p", str(base), I2C1]).split():
        assert get(merged, I2C1, prop, "x") == get(base, I2C1, prop, "x"), prop


@pytest.fixture()
def scratch_pi(tmp_path: Path) -> Iterator[Path]:
    """A copy of the script next to an overlays/ folder of the test's own (the script compiles its own folder)."""
    pi = tmp_path / "pi"
    (pi / "overlays" / "bookworm").mkdir(parents=True)
    shutil.copy2(SCRIPT, pi / "dtoverlays.sh")
    shutil.copy2(OVERLAY, pi / "overlays" / "bookworm" / OVERLAY.name)
    yield pi


def test_a_source_that_does_not_compile_is_named_and_leaves_no_dtbo(scratch_pi: Path, tmp_path: Path) -> None:
    broken = scratch_pi / "overlays" / "bookworm" / "broken.dts"
    broken.write_text('/dts-v1/;\n/plugin/;\n/ {\n\tfragment@0 {\n\t\ttarget-path = "/soc";\n\t\t__overlay__ {\n'
                      '\t\t\tstatus = "okay"\n\t\t};\n\t};\n};\n')  # no semicolon after "okay"
    out = tmp_path / "out"
    out.mkdir()
    (out / "broken.dtbo").write_bytes(b"an older build's file")
    done = compile_overlays(out, script=scratch_pi / "dtoverlays.sh")
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
    assert done.returncode == 2 and "usage: dtoverlays.sh SUITE OUT-DIR" in done.stderr, done.stderr


def tar_xz(files: dict[str, bytes], links: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for name, target in links.items():
            info = tarfile.TarInfo(f"./{name}")
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


def fake_deb(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    """A Debian package (ar: debian-binary, control.tar.xz, data.tar.xz) holding ``files`` and ``links``."""
    members = [("debian-binary", b"2.0\n"), ("control.tar.xz", tar_xz({"control": b"Package: fake\n"}, {})),
               ("data.tar.xz", tar_xz(files, links or {}))]
    out = b"!<arch>\n"
    for name, content in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(content):<10}`\n".encode() + content
        out += b"\n" if len(content) % 2 else b""
    return out


class FakeArchive:
    """Debian's two archives (``debian``, ``debian-security``) in a folder, served over HTTP on 127.0.0.1."""

    def __init__(self, root: Path, url: str) -> None:
        self.root, self.url = root, url
        self.entries: dict[tuple[str, str], list[str]] = {}

    def add(self, archive: str, dist: str, name: str, version: str, depends: str = "", deb: bytes = b"",
            sha256: str = "") -> None:
        """A package in a dist's Packages index, its file in the pool (``sha256`` overrides the index's)."""
        filename = f"pool/main/l/{name}_{version}_arm64.deb"
        (self.root / archive / filename).parent.mkdir(parents=True, exist_ok=True)
        (self.root / archive / filename).write_bytes(deb)
        entry = [f"Package: {name}", f"Version: {version}", "Architecture: arm64"]
        entry += [f"Depends: {depends}"] if depends else []
        entry += [f"Filename: {filename}", f"Size: {len(deb)}",
                  f"SHA256: {sha256 or hashlib.sha256(deb).hexdigest()}"]
        self.entries.setdefault((archive, dist), []).append("\n".join(entry) + "\n")
        index = self.root / archive / "dists" / dist / "main" / "binary-arm64" / "Packages.xz"
        index.parent.mkdir(parents=True, exist_ok=True)
        index.write_bytes(lzma.compress("\n".join(self.entries[archive, dist]).encode()))


@pytest.fixture()
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeArchive]:
    root = tmp_path / "archive"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("POLLBOX_MIRROR", f"{url}/debian")
    monkeypatch.setenv("POLLBOX_SECURITY_MIRROR", f"{url}/debian-security")
    yield FakeArchive(root, url)
    server.shutdown()
    server.server_close()
    thread.join()


def test_bookworm_s_tree_comes_from_the_newest_kernel_of_its_three_dists(archive: FakeArchive,
                                                                         tmp_path: Path) -> None:
    for where, dist, abi, version in (("debian", "bookworm", "50", "6.1.99-1"),
                                      ("debian", "bookworm-updates", "51", "6.1.176-1"),
                                      ("debian-security", "bookworm-security", "57", "6.1.192-3")):
        image = f"linux-image-6.1.0-{abi}-arm64"
        archive.add(where, dist, "linux-image-arm64", version, f"{image} (= {version})")
        archive.add(where, dist, image, version, "kmod, linux-base (>= 4.3~)", fake_deb(
            {f"usr/lib/{image}/broadcom/{DTB}": f"tree {version}".encode(),
             f"usr/lib/{image}/broadcom/bcm2711-rpi-400.dtb": b"another board's tree"}))
    dtb, source = debian_tree("bookworm", tmp_path / "cache")
    assert dtb.read_bytes() == b"tree 6.1.192-3", source  # 192 > 176 > 99 as numbers, not as text
    assert source == (f"linux-image-6.1.0-57-arm64 6.1.192-3 ({archive.url}/debian-security/"
                      "pool/main/l/linux-image-6.1.0-57-arm64_6.1.192-3_arm64.deb)")
    assert os.listdir(tmp_path / "cache") == ["linux-image-6.1.0-57-arm64_6.1.192-3.dtb"], "the .deb is kept"


def test_trixie_s_tree_comes_from_backports_linux_base_package(archive: FakeArchive, tmp_path: Path) -> None:
    release, version = "7.3.4+deb13-arm64", "7.3.4-1~bpo13+1"
    archive.add("debian", "trixie-backports", "linux-image-arm64", version,
                f"linux-base-arm64 (= {version}), linux-image-{release} (= {version})")
    archive.add("debian", "trixie-backports", f"linux-image-{release}", version,
                f"dracut | initramfs-tools, linux-base-{release} (= {version})", fake_deb({}))
    # the tree sits in linux-base-<release>, under modules/<release>/dtb, linked from usr/lib/linux-image-<release>
    archive.add("debian", "trixie-backports", f"linux-base-{release}", version, "", fake_deb(
        {f"usr/lib/modules/{release}/dtb/broadcom/{DTB}": b"the backports tree"},
        {f"usr/lib/linux-image-{release}": f"modules/{release}/dtb"}))
    dtb, source = debian_tree("trixie", tmp_path / "cache")
    assert dtb.read_bytes() == b"the backports tree"
    assert dtb.name == f"linux-base-{release}_{version}.dtb" and source.startswith(f"linux-base-{release} {version}")


def test_a_package_whose_sha256_is_not_its_index_s_is_refused(archive: FakeArchive, tmp_path: Path) -> None:
    archive.add("debian", "trixie-backports", "linux-image-arm64", "7.0-1", "linux-image-7.0-arm64 (= 7.0-1)")
    archive.add("debian", "trixie-backports", "linux-image-7.0-arm64", "7.0-1", "",
                fake_deb({f"usr/lib/linux-image-7.0-arm64/broadcom/{DTB}": b"a tree"}),
                sha256=hashlib.sha256(b"some other file").hexdigest())
    with pytest.raises(Refused, match=r"linux-image-7\.0-arm64_7\.0-1_arm64\.deb has SHA256 [0-9a-f]{64}, but "
                       r"trixie-backports's Packages index gives [0-9a-f]{64} for linux-image-7\.0-arm64 7\.0-1: "
                       "refusing it"):
        debian_tree("trixie", tmp_path / "cache")
    assert os.listdir(tmp_path / "cache") == [], "something of the refused package is left"


def test_an_unreachable_mirror_skips_naming_the_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLLBOX_MIRROR", "http://127.0.0.1:9/")
    with pytest.raises(pytest.skip.Exception, match=r"did not answer, so there is no trixie bcm2711-rpi-4-b\.dtb: "
                       r"http://127\.0\.0\.1:9/dists/trixie-backports/main/binary-arm64/Packages\.xz: "):
        debian_tree("trixie", tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_debian_version_order() -> None:
    assert compare_versions("6.1.192-3", "6.1.99-1") > 0
    assert compare_versions("7.3.4-1~bpo13+1", "7.3.4-1") < 0  # a backport sorts before the release it backports
    assert compare_versions("1:1.0-1", "2.0-1") > 0  # the epoch first
    assert compare_versions("1.0-1", "1.0-1") == 0 and compare_versions("1.0a-1", "1.0+b-1") < 0
