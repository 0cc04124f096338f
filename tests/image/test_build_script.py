"""The image build script's refusals, its key and its shared cache: fast checks that need no build
(they run in ``make test``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .vm import BUILD, REPO, cache_name

TOOLS = ("bash", "id", "df", "awk", "mkdir", "dirname", "git", "sha256sum", "cut", "find", "sort", "xargs",
         "flock", "date")
"""What build.sh needs before its first step: everything but mmdebstrap."""


def build(arch: str, out: Path, path: str | None = None,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # a cache of the test's own unless the test names one: the user's build cache is never touched
    env = {**os.environ, "PYTHON": sys.executable, "POLLBOX_IMAGE_CACHE": str(out.parent / "cache"), **(env or {})}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(["bash", str(BUILD), arch, str(out)], capture_output=True, text=True, env=env)


@pytest.mark.skipif(os.geteuid() != 0, reason="as non-root the script stops first at the root check")
@pytest.mark.skipif(os.uname().machine in ("aarch64", "arm64"), reason="an arm64 host builds arm64 natively")
@pytest.mark.parametrize(("registered", "said"), [
    (None, "needs binfmt_misc mounted: mount -t binfmt_misc"),
    ("", "needs qemu-aarch64 registered with binfmt_misc: apt-get install qemu-user-static"),
    ("enabled\ninterpreter /usr/bin/qemu-aarch64\nflags: P\n", "without the F flag"),
])
def test_arm64_on_another_host_says_what_emulation_is_missing(tmp_path: Path, registered: str | None,
                                                               said: str) -> None:
    binfmt = tmp_path / "binfmt_misc"
    if registered is not None:
        binfmt.mkdir()
        (binfmt / "status").write_text("enabled\n")
        if registered:
            (binfmt / "qemu-aarch64").write_text(registered)
    out = tmp_path / "out"
    done = build("arm64", out, env={"POLLBOX_BINFMT_DIR": str(binfmt)})
    assert done.returncode == 2 and said in done.stderr, done.stderr
    assert not list(out.glob("pollbox-*")) and not list(out.glob(".work-*"))


def test_an_unknown_architecture_is_refused(tmp_path: Path) -> None:
    done = build("armhf", tmp_path)
    assert done.returncode == 2 and "unknown architecture 'armhf'" in done.stderr


@pytest.mark.parametrize("suite", ["sid", "bullseye", "Trixie", "trixie-backports"])
def test_an_unknown_debian_suite_is_refused_and_nothing_written(tmp_path: Path, suite: str) -> None:
    """``POLLBOX_SUITE`` takes bookworm or trixie only: anything else stops the build before its locks,
    its output folder or its cache exist, and says which suites there are."""
    out = tmp_path / "out"
    done = build("amd64", out, env={"POLLBOX_SUITE": suite})
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"unknown Debian suite '{suite}' (POLLBOX_SUITE): bookworm or trixie" in done.stderr, done.stderr
    assert not out.exists() and not (tmp_path / "cache").exists()
    keyed = subprocess.run(["bash", str(BUILD), "--key", "amd64"], capture_output=True, text=True,
                           env={**os.environ, "POLLBOX_SUITE": suite})
    assert keyed.returncode == 2 and keyed.stdout == "" and "unknown Debian suite" in keyed.stderr


def suite_key(arch: str, suite: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "POLLBOX_SUITE"}
    if suite is not None:
        env["POLLBOX_SUITE"] = suite
    return image_key(BUILD, arch, env)


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_each_debian_suite_is_another_image(arch: str) -> None:
    """The suite is part of the image's key (and of its base system's): trixie is the default, and a
    bookworm image is never taken for a trixie one, in the output folder or in the shared cache."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    default = suite_key(arch, None)
    assert suite_key(arch, "trixie") == default, "trixie is not the default suite"
    assert suite_key(arch, "bookworm") != default, "a bookworm image has a trixie image's key"


@pytest.mark.skipif(os.geteuid() != 0, reason="as non-root the script stops first at the root check")
def test_a_missing_tool_names_the_debian_package_and_writes_nothing(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = subprocess.run(["bash", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        (bin_dir / tool).symlink_to(found)
    out = tmp_path / "out"
    done = build("amd64", out, path=str(bin_dir))
    assert done.returncode == 2
    assert "missing Debian packages: mmdebstrap" in done.stderr and "apt-get install mmdebstrap" in done.stderr
    assert [p.name for p in out.iterdir()] == [".build-amd64.lock"]  # the build lock only, no image


@pytest.mark.skipif(os.geteuid() != 0, reason="as non-root the script stops first at the root check")
def test_a_failing_step_is_named_and_leaves_no_work_folder_or_image(tmp_path: Path) -> None:
    if subprocess.run(["bash", "-c", "command -v mmdebstrap mke2fs mkfs.vfat mcopy sfdisk"],
                      capture_output=True).returncode != 0:
        pytest.skip("the image tools are not installed (make image-deps)")
    out = tmp_path / "out"
    # a Python that fails: the first step (the wheels) fails inside its logged function
    done = build("amd64", out, env={"PYTHON": "/bin/false", "POLLBOX_IMAGE_CACHE": str(tmp_path / "cache")})
    assert done.returncode != 0
    assert "image: step 1/9 failed: Python wheels for amd64; nothing was written under the final name" \
        in done.stderr, done.stderr
    assert not list(out.glob("pollbox-*")) and not list(out.glob(".work-*"))


def recipe_clone(tmp_path: Path) -> tuple[Path, Path]:
    """A clone of this checkout in ``tmp_path`` with this checkout's recipe folder (committed or not) copied
    in: (the clone, its recipe folder). Skips outside a git checkout."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--shared", str(REPO), str(clone)], check=True, capture_output=True)
    recipe = clone / BUILD.relative_to(REPO).parent
    shutil.copytree(BUILD.parent, recipe, dirs_exist_ok=True)
    return clone, recipe


def image_key(script: Path, arch: str = "amd64", env: dict[str, str] | None = None, option: str = "--key") -> str:
    """The key ``script`` prints for ``arch``: the image's (``--key``) or its Debian system's (``--base-key``)."""
    done = subprocess.run(["bash", str(script), option, arch], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and len(done.stdout.strip()) == 64, done.stderr
    return done.stdout.strip()


def commit(clone: Path, path: str, text: str) -> None:
    (clone / path).parent.mkdir(parents=True, exist_ok=True)
    (clone / path).write_text(text)
    for command in (["add", path], ["commit", "-q", "-m", f"change {path}", "--", path]):
        subprocess.run(["git", "-C", str(clone), "-c", "user.name=t", "-c", "user.email=t@example.org", *command],
                       check=True, capture_output=True)


def test_the_rauc_patch_is_part_of_the_pi_trixie_system_only(tmp_path: Path) -> None:
    """RAUC's dm-verity patch goes into the Debian 13 Pi image's system (trixie-backports' kernel): a
    change to it or to the script that builds it is another base system there, and nowhere else."""
    _, recipe = recipe_clone(tmp_path)
    script = recipe / BUILD.name
    targets = [("arm64", "trixie"), ("arm64", "bookworm"), ("amd64", "trixie")]
    def base_key(arch: str, suite: str) -> str:
        return image_key(script, arch, {**os.environ, "POLLBOX_SUITE": suite}, option="--base-key")

    before = {target: base_key(*target) for target in targets}
    patch = recipe / "rauc-dm-status.patch"
    assert "+static gboolean dmstatus_is(" in patch.read_text()
    patch.write_text(patch.read_text() + "\n")
    after = {target: base_key(*target) for target in targets}
    assert after[("arm64", "trixie")] != before[("arm64", "trixie")], "the patch is not in the Pi's trixie system"
    assert after[("arm64", "bookworm")] == before[("arm64", "bookworm")]
    assert after[("amd64", "trixie")] == before[("amd64", "trixie")]


def test_the_image_key_follows_what_goes_into_the_image_not_the_commit(tmp_path: Path) -> None:
    """A commit that touches only tests, docs, benchmarks or the README keeps the key (no rebuild); one
    that changes pollbox's packaged sources or the recipe makes another key."""
    clone, recipe = recipe_clone(tmp_path)
    script = recipe / BUILD.name
    first = image_key(script)
    for path in ("tests/image/new_test_data.txt", "docs/new-page.md", "bench/notes.txt", "README.md"):
        commit(clone, path, "only outside the image\n")
        assert image_key(script) == first, f"a commit of {path} changed the image's key"
    assert image_key(script, "arm64") != first
    commit(clone, "device/new_module.py", "VALUE = 1\n")
    packaged = image_key(script)
    assert packaged != first, "a change to pollbox's sources kept the image's key"
    (recipe / "packages-common.txt").write_text((recipe / "packages-common.txt").read_text() + "less\n")
    assert image_key(script) not in (first, packaged), "a change to the package list kept the image's key"
    env_key = subprocess.run(["bash", str(script), "--key", "amd64"], capture_output=True, text=True,
                             env={**os.environ, "POLLBOX_ELECTION_ID": "another-election"}).stdout.strip()
    assert env_key != image_key(script), "another trust anchor kept the image's key"


def test_an_edit_of_the_script_during_a_build_does_not_run_into_the_running_one(tmp_path: Path) -> None:
    """bash reads a script as it runs it: the build must not read on after its work is done, where an edit of
    build.sh made meanwhile (a checkout, a pull) would hand it a shifted tail of the new file to run."""
    _, recipe = recipe_clone(tmp_path)
    script = recipe / BUILD.name
    # a git that, at the build's first call, puts a longer comment at the top of build.sh, as an edit would
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    edited = tmp_path / "edited"
    real_git = shutil.which("git")
    (bin_dir / "git").write_text(
        "#!/bin/bash\n"
        f"if [ ! -e {edited} ]; then touch {edited}\n"
        f"  {{ printf '# %0200d\\n' 0; cat {script}; }} > {script}.new && cat {script}.new > {script}\n"
        "fi\n"
        f'exec {real_git} "$@"\n')
    (bin_dir / "git").chmod(0o755)
    done = subprocess.run(["bash", str(script), "--key", "amd64"], capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert edited.exists(), "the build never called git: the edit was not made"
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert len(done.stdout.split()) == 1 and len(done.stdout.strip()) == 64, done.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="as non-root the script stops first at the root check")
@pytest.mark.parametrize("where", ["POLLBOX_IMAGE_CACHE", "XDG_CACHE_HOME"])
def test_a_fresh_clone_copies_the_image_the_shared_cache_holds(tmp_path: Path, where: str) -> None:
    """The finished image of a key is kept in the per-user cache (``$XDG_CACHE_HOME/pollbox/image`` or
    ``POLLBOX_IMAGE_CACHE``): another output folder (another clone) with the same key copies it, never
    hands out the cache's own file, and then finds its image up to date."""
    if subprocess.run(["bash", "-c", "command -v mmdebstrap mke2fs mkfs.vfat mcopy sfdisk"],
                      capture_output=True).returncode != 0:
        pytest.skip("the image tools are not installed (make image-deps)")
    env = {k: v for k, v in os.environ.items() if k not in ("POLLBOX_IMAGE_CACHE", "XDG_CACHE_HOME")}
    if where == "POLLBOX_IMAGE_CACHE":
        cache = tmp_path / "cache"
        env["POLLBOX_IMAGE_CACHE"] = str(cache)
    else:
        env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
        cache = tmp_path / "xdg" / "pollbox" / "image"
    key = subprocess.run(["bash", str(BUILD), "--key", "amd64"], capture_output=True, text=True,
                         env=env).stdout.strip()
    name = cache_name("amd64", env)
    assert name.endswith("-amd64"), name
    cached = cache / f"image-{name}-{key}"
    cached.mkdir(parents=True)
    (cached / "pollbox.img").write_bytes(b"an image built before " + os.urandom(64))
    (cached / "pollbox.manifest").write_text(f"# recipe key {key}\n")
    out = tmp_path / "clone" / "build" / "image"
    # a Python that fails: were the cached image not taken, the build's first step would fail at once
    done = subprocess.run(["bash", str(BUILD), "amd64", str(out)], capture_output=True, text=True,
                          env={**env, "PYTHON": "/bin/false"})
    assert done.returncode == 0, done.stderr
    assert f"key {key[:12]} was built before: copied from the cache {cache}" in done.stdout, done.stdout
    image = out / "pollbox-amd64.img"
    assert image.read_bytes() == (cached / "pollbox.img").read_bytes()
    assert image.stat().st_ino != (cached / "pollbox.img").stat().st_ino
    assert (out / "pollbox-amd64.manifest").read_text() == (cached / "pollbox.manifest").read_text()
    assert (out / "pollbox-amd64.key").read_text().strip() == key
    assert not list(out.glob(".work-*"))
    again = subprocess.run(["bash", str(BUILD), "amd64", str(out)], capture_output=True, text=True,
                           env={**env, "PYTHON": "/bin/false"})
    assert again.returncode == 0 and "is up to date" in again.stdout, again.stdout + again.stderr
