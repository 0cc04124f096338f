"""Kernel simulator modules that Debian's kernel leaves out, built for the image's exact kernel. Tests only.

Debian's amd64 kernels (bookworm's 6.1 and trixie's 6.12) are configured without the GPIO simulators
(``CONFIG_GPIO_SIM``, ``CONFIG_GPIO_MOCKUP`` and the ``CONFIG_IRQ_SIM`` they need are all unset), so
the GPIO tests build ``gpio-sim`` as an out-of-tree module from Debian's own source package of the
image's kernel (``linux-source-X.Y``), against that kernel's headers. The build runs in a throwaway
Debian system of the image's own suite, made by mmdebstrap from the archives the image's manifest names,
so its compiler is the one the kernel was built with (the headers package depends on it: gcc-12 for
bookworm, gcc-14 for trixie), whatever the host's Debian is. ``irq_sim`` is linked into the same module
when the kernel lacks it; its one call to ``irq_to_desc`` (not exported to modules by Debian's kernel)
is replaced with the exported ``generic_handle_irq``, which runs the same ``handle_simple_irq`` through
the interrupt's descriptor. Nothing else is changed. The module is unsigned: it loads (tainting the
kernel) because the test machine boots without Secure Boot, so the kernel is not locked down.

The module is kept in ``build/kernel-modules`` for the next run, and the Debian packages the throwaway
system downloaded in ``build/kernel-modules/debs-SUITE``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from .vm import REPO

CACHE = REPO / "build" / "kernel-modules"
BUILD_IN = "/tmp/gpio-sim"
"""Where the module's sources go inside the throwaway system."""


class NoModule(Exception):
    """The module cannot be built on this host; the message says why (a reason to skip)."""


@dataclass(frozen=True)
class ImageKernel:
    """The kernel of an image, and where the image's Debian packages came from, read from its manifest."""

    release: str  # 6.1.0-57-amd64, 6.12.118+deb13-amd64: the name under /lib/modules
    version: str  # the Debian package's version: 6.1.192-1, 6.12.118-1
    suite: str  # bookworm, trixie
    sources: tuple[str, ...]  # the apt sources lines the image was built from

    @property
    def series(self) -> str:
        """6.1, 6.12: the name of Debian's ``linux-source-SERIES`` package."""
        return ".".join(self.release.split(".")[:2])


def image_kernel(manifest: Path) -> ImageKernel:
    """The kernel of an image, its Debian suite and its archives, from the image's manifest."""
    text = manifest.read_text()
    found = re.search(r"^linux-image-(\d+\.\d+\.\d+(?:-\d+|\+deb\d+(?:\.\d+)?)-amd64)\s+(\S+)\s", text, re.M)
    if found is None:
        raise NoModule(f"{manifest} names no amd64 kernel package (linux-image-RELEASE-amd64)")
    suite = re.search(r"^# pollbox-\S+ image, Debian (\w+),", text, re.M)
    sources = tuple(line.removeprefix("#").strip() for line in text.splitlines()
                    if re.match(r"#\s+deb\s", line))
    if suite is None or not sources:
        raise NoModule(f"{manifest} does not say which Debian suite and archives the image was built from")
    return ImageKernel(found.group(1), found.group(2), suite.group(1), sources)


def _run(command: list[str], what: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise NoModule(f"{what} failed: {(done.stdout + done.stderr).strip()[-1500:]}")
    return done.stdout


def _throwaway_system(kernel: ImageKernel, root: Path) -> None:
    """A minimal Debian system of the image's suite at ``root`` with the kernel's headers (and through
    them its compiler and kbuild) and source, at the image's kernel's version exactly."""
    debs = CACHE / f"debs-{kernel.suite}"
    debs.mkdir(parents=True, exist_ok=True)
    packages = [f"linux-headers-{kernel.release}={kernel.version}",
                f"linux-source-{kernel.series}={kernel.version}", "make", "xz-utils"]
    # the same apt cache hooks as the image's build: packages come from the cache when they are there
    _run(["mmdebstrap", "--quiet", "--mode=root", "--variant=apt", "--arch=amd64",
          f"--include={','.join(packages)}",
          '--setup-hook=mkdir -p "$1"/var/cache/apt/archives/',
          f"--setup-hook=sync-in {debs} /var/cache/apt/archives/",
          f"--customize-hook=sync-out /var/cache/apt/archives {debs}",
          kernel.suite, str(root), *kernel.sources],
         f"mmdebstrap of a {kernel.suite} system with {' '.join(packages)}")


def _sources(kernel: ImageKernel, root: Path) -> Path:
    """gpio-sim's sources (and irq_sim's when the kernel lacks it), taken from the kernel's own source
    package and patched as the module docstring says, with their Kbuild file; the folder they are in."""
    config = (root / "usr" / "src" / f"linux-headers-{kernel.release}" / ".config").read_text()
    if re.search(r"^CONFIG_GPIO_SIM=", config, re.M):
        raise NoModule(f"the kernel {kernel.release} has gpio-sim already: load its own module instead")
    with_irq_sim = not re.search(r"^CONFIG_IRQ_SIM=y", config, re.M)
    top = f"linux-source-{kernel.series}"
    wanted = {f"{top}/drivers/gpio/gpio-sim.c": "gpio-sim-core.c", f"{top}/drivers/gpio/gpiolib.h": "gpiolib.h"}
    if with_irq_sim:
        wanted[f"{top}/kernel/irq/irq_sim.c"] = "irq_sim.c"
    source = root / BUILD_IN.lstrip("/")
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    with tarfile.open(root / "usr" / "src" / f"{top}.tar.xz") as tar:
        for member in tar:
            if member.name in wanted:
                extracted = tar.extractfile(member)
                assert extracted is not None
                (source / wanted[member.name]).write_bytes(extracted.read())
    missing = sorted(set(wanted.values()) - {p.name for p in source.iterdir()})
    if missing:
        raise NoModule(f"{top} has no {', '.join(missing)}")
    objects = "gpio-sim-core.o"
    if with_irq_sim:
        irq_sim = source / "irq_sim.c"
        text = irq_sim.read_text()
        call = "handle_simple_irq(irq_to_desc(irqnum));"
        if call not in text:
            raise NoModule(f"irq_sim.c of {top} no longer calls {call}")
        irq_sim.write_text(text.replace(call, "generic_handle_irq(irqnum);"))
        objects += " irq_sim.o"
    (source / "Kbuild").write_text(f"obj-m := gpio-sim.o\ngpio-sim-y := {objects}\n")
    return source


def gpio_sim_module(manifest: Path) -> Path:
    """``gpio-sim.ko`` for the kernel of the image whose manifest is ``manifest`` (built once, then cached)."""
    kernel = image_kernel(manifest)
    module = CACHE / f"gpio-sim-{kernel.release}-{kernel.version}.ko"
    if module.exists():
        return module
    if shutil.which("mmdebstrap") is None:
        raise NoModule("building gpio-sim needs mmdebstrap on the host (apt-get install mmdebstrap)")
    root = CACHE / f"work-{kernel.release}"
    shutil.rmtree(root, ignore_errors=True)
    try:
        _throwaway_system(kernel, root)
        source = _sources(kernel, root)
        _run(["chroot", str(root), "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "make", "-C",
              f"/usr/src/linux-headers-{kernel.release}", f"M={BUILD_IN}", "modules"], "building gpio-sim.ko")
        partial = module.with_name(module.name + ".partial")
        shutil.copyfile(source / "gpio-sim.ko", partial)
        partial.replace(module)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return module
