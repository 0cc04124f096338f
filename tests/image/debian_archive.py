"""Debian's Raspberry Pi 4 device tree (``bcm2711-rpi-4-b.dtb``) taken straight from Debian's archive: from the
arm64 kernel package the Raspberry Pi image ships for a Debian suite, without building the image.

Which kernel a suite's Pi image ships (``SUITE_DISTS``), as provisioning/image/debian/build.sh installs it:
on trixie, trixie-backports' ``linux-image-arm64``; on bookworm, the newest ``linux-image-arm64`` among
bookworm, bookworm-updates and bookworm-security. Each dist's ``main/binary-arm64/Packages.xz`` is read from
``POLLBOX_MIRROR`` (default http://deb.debian.org/debian) or, for the security dist,
``POLLBOX_SECURITY_MIRROR`` (default http://deb.debian.org/debian-security), the variables build.sh reads.
The metapackage's Depends name the real ``linux-image-<release>-arm64``; the tree is in that package
(bookworm's kernels) or, when it depends on ``linux-base-<release>-arm64`` (the split packaging of the newer
kernels, where linux-image-<release>-arm64 holds no files), in that one, under ``usr/lib/linux-image-<release>``
(a folder, or a link to ``modules/<release>/dtb``). The package is downloaded, checked against the SHA256
its Packages entry gives (a mismatch is refused), and only the tree is kept: ``build/pi-dtb/<package>_<version>.dtb``.
The Packages indexes are read at every call, so a new kernel in the archive means a new tree.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import posixpath
import re
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .vm import REPO

DTB = "bcm2711-rpi-4-b.dtb"
CACHE = REPO / "build" / "pi-dtb"
SUITE_DISTS = {"trixie": (("main", "trixie-backports"),),
               "bookworm": (("main", "bookworm"), ("main", "bookworm-updates"), ("security", "bookworm-security"))}
"""Per Debian suite, the (archive, dist) pairs whose newest linux-image-arm64 the suite's Pi image ships."""
TIMEOUT = 60.0
"""Seconds a connection to the archive may stay silent."""
CHUNK = 1 << 20


class Unreachable(Exception):
    """The archive did not answer for ``url``."""

    def __init__(self, url: str, reason: object) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url


class Refused(Exception):
    """What the archive served is not what its index says (a checksum, a missing package or file)."""


@dataclass(frozen=True)
class Package:
    """One package's entry in a dist's Packages index, with the archive it came from."""

    name: str
    version: str
    depends: str
    filename: str
    sha256: str
    archive: str
    dist: str

    @property
    def url(self) -> str:
        return f"{self.archive}/{self.filename}"


def archives() -> dict[str, str]:
    return {"main": os.environ.get("POLLBOX_MIRROR", "http://deb.debian.org/debian").rstrip("/"),
            "security": os.environ.get("POLLBOX_SECURITY_MIRROR",
                                       "http://deb.debian.org/debian-security").rstrip("/")}


def compare_versions(a: str, b: str) -> int:
    """Debian's version order (epoch, upstream version, revision), as dpkg itself compares: -1, 0 or 1."""
    for answer, relation in ((-1, "lt"), (0, "eq")):
        if subprocess.run(["dpkg", "--compare-versions", a, relation, b]).returncode == 0:
            return answer
    return 1


def fetch(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as answer:
            return bytes(answer.read())
    except (urllib.error.URLError, OSError) as error:
        raise Unreachable(url, getattr(error, "reason", error)) from error


def stanzas(text: str) -> Iterator[dict[str, str]]:
    """A Packages index's entries as field -> value (continuation lines joined)."""
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


def kernel_index(archive: str, dist: str) -> dict[str, Package]:
    """A dist's kernel packages (``linux-*``) by name, the newest version of each."""
    base = archives()[archive]
    url = f"{base}/dists/{dist}/main/binary-arm64/Packages.xz"
    try:
        text = lzma.decompress(fetch(url)).decode()
    except lzma.LZMAError as error:
        raise Refused(f"{url} is not an xz-compressed Packages index: {error}") from error
    found: dict[str, Package] = {}
    for fields in stanzas(text):
        name = fields.get("Package", "")
        if not name.startswith("linux-"):
            continue
        package = Package(name, fields["Version"], fields.get("Depends", ""), fields["Filename"],
                          fields["SHA256"], base, dist)
        if name not in found or compare_versions(package.version, found[name].version) > 0:
            found[name] = package
    return found


def depends(package: Package) -> dict[str, str]:
    """The package's Depends as name -> the version it pins with ``(= ...)`` ("" when none)."""
    found: dict[str, str] = {}
    for clause in package.depends.split(","):
        if match := re.fullmatch(r"\s*([^\s(|]+)\s*(?:\(\s*=\s*([^)\s]+)\s*\))?\s*", clause):
            found[match.group(1)] = match.group(2) or ""
    return found


def pinned(index: dict[str, Package], name: str, version: str, wanted_by: Package) -> Package:
    package = index.get(name)
    if package is None or (version and package.version != version):
        raise Refused(f"{wanted_by.name} {wanted_by.version} in {wanted_by.dist} depends on {name}"
                      f"{f' (= {version})' if version else ''}, which {wanted_by.dist}'s Packages index lacks")
    return package


def kernel_packages(suite: str) -> tuple[Package, Package]:
    """The suite's Pi kernel: the real ``linux-image-<release>-arm64`` the image's linux-image-arm64 depends on,
    and the package that carries its device trees (the same package, or its ``linux-base-<release>-arm64``)."""
    indexes = [kernel_index(archive, dist) for archive, dist in SUITE_DISTS[suite]]
    candidates = [(index, index["linux-image-arm64"]) for index in indexes if "linux-image-arm64" in index]
    if not candidates:
        raise Refused(f"no linux-image-arm64 in {', '.join(dist for _, dist in SUITE_DISTS[suite])}")
    index, meta = candidates[0]
    for other_index, other in candidates[1:]:
        if compare_versions(other.version, meta.version) > 0:
            index, meta = other_index, other
    images = {name: version for name, version in depends(meta).items()
              if re.fullmatch(r"linux-image-.+-arm64", name)}
    if len(images) != 1:
        raise Refused(f"linux-image-arm64 {meta.version} in {meta.dist} depends on {sorted(images) or 'no'} "
                      "linux-image-<release>-arm64 package(s), not one")
    [(name, version)] = images.items()
    image = pinned(index, name, version, meta)
    release = name.removeprefix("linux-image-")
    base = f"linux-base-{release}"
    image_depends = depends(image)
    if base in image_depends:
        return image, pinned(index, base, image_depends[base], image)
    return image, image


def data_member(deb: BinaryIO, url: str) -> str:
    """Move ``deb`` (an ar archive) to the start of its data.tar.* member; that member's name."""
    if deb.read(8) != b"!<arch>\n":
        raise Refused(f"{url} is not a Debian package (no ar header)")
    while header := deb.read(60):
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode().strip())
        if name.startswith("data.tar"):
            return name
        deb.seek(size + size % 2, os.SEEK_CUR)
    raise Refused(f"{url} has no data.tar member")


def tree_in(deb_path: Path, url: str, image: str) -> bytes:
    """``usr/lib/<image>/broadcom/bcm2711-rpi-4-b.dtb`` out of the package, following the links inside it."""
    links: dict[str, str] = {}
    trees: dict[str, bytes] = {}
    with deb_path.open("rb") as deb:
        member = data_member(deb, url)
        try:
            with tarfile.open(fileobj=deb, mode="r|*") as data:
                for entry in data:
                    path = posixpath.normpath(entry.name)
                    if entry.issym():
                        links[path] = posixpath.normpath(posixpath.join(posixpath.dirname(path), entry.linkname))
                    elif entry.isfile() and path.endswith(f"/broadcom/{DTB}"):
                        file = data.extractfile(entry)
                        assert file is not None
                        trees[path] = file.read()
        except tarfile.TarError as error:
            raise Refused(f"{url}: its {member} cannot be read: {error}") from error
    wanted = f"usr/lib/{image}/broadcom/{DTB}"
    path = ""
    for part in wanted.split("/"):
        path = posixpath.join(path, part)
        for _ in range(40):
            if path not in links:
                break
            path = links[path]
    if path not in trees:
        raise Refused(f"{url} has no {wanted}")
    return trees[path]


def download(package: Package, dest: Path) -> None:
    """The package's file into ``dest``, refused unless its SHA256 is the one its Packages entry gives."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(package.url, timeout=TIMEOUT) as answer, dest.open("wb") as out:
            while chunk := answer.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError) as error:
        raise Unreachable(package.url, getattr(error, "reason", error)) from error
    if digest.hexdigest() != package.sha256.lower():
        raise Refused(f"{package.url} has SHA256 {digest.hexdigest()}, but {package.dist}'s Packages index "
                      f"gives {package.sha256} for {package.name} {package.version}: refusing it")


def pi4_tree(suite: str, cache: Path = CACHE) -> tuple[Path, Package]:
    """Debian's Pi 4 device tree of the suite's Pi kernel, and the package it came from (cached by package
    and version). Raises ``Unreachable`` naming the URL that did not answer, ``Refused`` for what does not
    match the archive's index."""
    image, carrier = kernel_packages(suite)
    dtb = cache / f"{carrier.name}_{carrier.version}.dtb"
    if dtb.is_file():
        return dtb, carrier
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as scratch:
        deb = Path(scratch) / posixpath.basename(carrier.filename)
        download(carrier, deb)
        tree = tree_in(deb, carrier.url, image.name)
        part = Path(scratch) / dtb.name
        part.write_bytes(tree)
        part.replace(dtb)
    return dtb, carrier
