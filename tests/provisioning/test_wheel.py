"""The wheel that goes into the station image carries everything the unit needs, and the screen runs from it.

The image recipe installs ``pollbox`` from a wheel, not from this checkout, so
a template, translation, font or image file missing from the wheel would only
show on a unit. This builds the wheel, checks that setuptools warns of no folder it
would leave out and that it holds every data file under
the packages, then runs the chair's screen and the receiver's overview from
the unpacked wheel alone.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("device", "web_ui", "receiver", "provisioning", "protocol")

SMOKE = """
import sys
from pathlib import Path
import web_ui, receiver, protocol
assert web_ui.__file__.startswith(sys.argv[1]), web_ui.__file__
assert protocol.__file__.startswith(sys.argv[1]), protocol.__file__
assert receiver.__file__.startswith(sys.argv[1]), receiver.__file__
from device.compose import build_appliance
from device.config import load_config
from device.demo import make_demo_station
from device.hardware.clock import FakeClock
from web_ui import create_app
work = Path(sys.argv[2])
appliance = build_appliance(load_config(make_demo_station(work / "station", voters=20)), clock=FakeClock())
appliance.start(background=False)
client = create_app(appliance, {"STATION_LANGUAGE": "ky"}, instance_path=work / "web").test_client()
page = client.get("/")
assert page.status_code == 200 and "Добуш" in page.get_data(as_text=True), page.status_code
for asset in ("/static/app.css", "/static/live.js", "/static/fonts/pollbox-sans.woff2"):
    assert client.get(asset).status_code == 200, asset
appliance.stop()
from receiver.app import create_app as receiver_app
from receiver.registry import Registry
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from protocol.keys import public_b64
from receiver.keys import write_private
cec = Ed25519PrivateKey.generate()
Registry().sign_and_save(work / "registry.json", cec)
write_private(work / "receiver.key", Ed25519PrivateKey.generate())
rx = receiver_app({"DATABASE_URL": str(work / "rx.db"), "REGISTRY_PATH": str(work / "registry.json"),
                   "CEC_PUBLIC_KEY": public_b64(cec.public_key()), "RECEIVER_KEY_PATH": str(work / "receiver.key")})
assert rx.test_client().get("/").status_code == 200
rx.extensions["pollbox_receiver"].storage.close()
print("ok")
"""


def tracked_data_files() -> set[str]:
    listed = subprocess.run(["git", "ls-files", *PACKAGES], cwd=ROOT, capture_output=True, text=True, check=True)
    return {name for name in listed.stdout.splitlines() if not name.endswith(".py")}


@pytest.mark.slow
def test_the_wheel_holds_every_data_file_and_the_screens_run_from_it(tmp_path: Path) -> None:
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "--wheel-dir", str(tmp_path / "dist"), str(ROOT)],
                           check=True, capture_output=True, text=True, cwd=tmp_path)
    # setuptools warns of a folder it would not ship (a data-only folder outside `packages`), and means
    # to stop shipping it: every folder under the packages must be one of them (setup.cfg)
    assert "would be ignored" not in built.stdout + built.stderr, (built.stdout + built.stderr)[-3000:]
    wheel = next((tmp_path / "dist").glob("pollbox-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        missing = sorted(tracked_data_files() - names)
        assert missing == [], f"not in the wheel: {missing}"
        archive.extractall(tmp_path / "site")
    run = subprocess.run([sys.executable, "-c", SMOKE, str(tmp_path / "site"), str(tmp_path / "work")],
                         cwd=tmp_path, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path / "site"), "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().endswith("ok")
