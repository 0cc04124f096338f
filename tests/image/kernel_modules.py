"""Kernel simulator modules that Debian's kernel leaves out, built for the image's exact kernel. Tests only.

Debian's bookworm kernel (linux-image-amd64) is configured without the GPIO simulators
(``CONFIG_GPIO_SIM``, ``CONFIG_GPIO_MOCKUP`` and the ``CONFIG_IRQ_SIM`` they need are all unset), so
the GPIO tests build ``gpio-sim`` as an out-of-tree module from Debian's own source package of the
image's kernel (``linux-source-6.1``), against that kernel's headers, with the host's compiler (a
bookworm host has the very gcc the kernel was built with). ``irq_sim`` is linked into the same
module; its one call to ``irq_to_desc`` (not exported to modules by Debian's kernel) is replaced
with the exported ``generic_handle_irq``, which runs the same ``handle_simple_irq`` through the
interrupt's descriptor. Nothing else is changed. The module is unsigned: it loads (tainting the
kernel) because the test machine boots without Secure Boot, so the kernel is not locked down.

Packages come from the host's apt (``apt-get download``, the versions pinned to the image's kernel);
the module is kept in ``build/kernel-modules`` for the next run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
from pathlib import Path

from .vm import REPO

CACHE = REPO / "build" / "kernel-modules"


class NoModule(Exception):
    """The module cannot be built on this host; the message says why (a reason to skip)."""


def image_kernel(manifest: Path) -> tuple[str, str]:
    """(kernel release, Debian package version) of the kernel in an image, from its manifest."""
    for line in manifest.read_text().splitlines():
        found = re.match(r"linux-image-(\d+\.\d+\.\d+-\d+-amd64)\s+(\S+)\s", line)
        if found:
            return found.group(1), found.group(2)
    # Debian 13's kernels are named RELEASE+deb13-amd64 (linux-image-6.12.118+deb13-amd64), built with a
    # gcc this host does not have: the module is made for Debian 12's kernels only
    raise NoModule(f"{manifest} names no Debian 12 kernel (linux-image-X.Y.Z-N-amd64): gpio-sim is built "
                   "for bookworm's kernels only")


def _run(command: list[str], cwd: Path, what: str) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise NoModule(f"{what} failed: {(done.stdout + done.stderr).strip()[-1500:]}")


def gpio_sim_module(manifest: Path) -> Path:
    """``gpio-sim.ko`` for the kernel of the image whose manifest is ``manifest`` (built once, then cached)."""
    release, version = image_kernel(manifest)
    module = CACHE / f"gpio-sim-{release}-{version}.ko"
    if module.exists():
        return module
    for tool in ("apt-get", "dpkg-deb", "make", "gcc-12"):
        if shutil.which(tool) is None:
            raise NoModule(f"building gpio-sim needs {tool} on the host")
    abi = release.removesuffix("-amd64")
    series = ".".join(release.split(".")[:2])
    work = CACHE / f"work-{release}"
    shutil.rmtree(work, ignore_errors=True)
    (work / "root").mkdir(parents=True)
    packages = [f"linux-headers-{release}={version}", f"linux-headers-{abi}-common={version}",
                f"linux-kbuild-{series}={version}", f"linux-source-{series}={version}"]
    _run(["apt-get", "download", *packages], work, f"apt-get download {' '.join(packages)}")
    for deb in sorted(work.glob("*.deb")):
        _run(["dpkg-deb", "-x", str(deb), "root"], work, f"unpacking {deb.name}")
    headers = work / "root" / "usr" / "src" / f"linux-headers-{release}"
    makefile = headers / "Makefile"  # it includes the common headers by their installed, absolute path
    makefile.write_text(makefile.read_text().replace("include /usr/src/", f"include {work / 'root'}/usr/src/"))
    source = work / "src"
    wanted = {f"linux-source-{series}/drivers/gpio/gpio-sim.c": "gpio-sim-core.c",
              f"linux-source-{series}/drivers/gpio/gpiolib.h": "gpiolib.h",
              f"linux-source-{series}/kernel/irq/irq_sim.c": "irq_sim.c"}
    source.mkdir()
    with tarfile.open(work / "root" / "usr" / "src" / f"linux-source-{series}.tar.xz") as tar:
        for member in tar:
            if member.name in wanted:
                extracted = tar.extractfile(member)
                assert extracted is not None
                (source / wanted[member.name]).write_bytes(extracted.read())
    missing = sorted(set(wanted.values()) - {p.name for p in source.iterdir()})
    if missing:
        raise NoModule(f"linux-source-{series} has no {', '.join(missing)}")
    irq_sim = source / "irq_sim.c"
    text = irq_sim.read_text()
    call = "handle_simple_irq(irq_to_desc(irqnum));"
    if call not in text:
        raise NoModule(f"irq_sim.c of linux-source-{series} no longer calls {call}")
    irq_sim.write_text(text.replace(call, "generic_handle_irq(irqnum);"))
    (source / "Kbuild").write_text("obj-m := gpio-sim.o\ngpio-sim-y := gpio-sim-core.o irq_sim.o\n")
    _run(["make", "-C", str(headers), f"M={source}", "modules"], work, "building gpio-sim.ko")
    shutil.copyfile(source / "gpio-sim.ko", module)
    shutil.rmtree(work)
    return module
