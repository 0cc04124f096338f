"""The rig's clearing of the firmware's RAM at each reset under emulation (``vm.firmware_ram_loaders``),
checked on the command line it gives QEMU (no boot; the reset loop, ``tests.image.reset_loop``, measures
what it changes on a booted unit)."""

from __future__ import annotations

from pathlib import Path

from .vm import FIRMWARE_RAM, MEMORY, MIB, firmware_ram_loaders


def test_each_region_is_a_loader_of_zeros_at_its_address(tmp_path: Path) -> None:
    args = firmware_ram_loaders(tmp_path)
    devices = [args[i + 1] for i, arg in enumerate(args) if arg == "-device"]
    assert len(devices) == len(FIRMWARE_RAM) == 2
    for device, (start, length) in zip(devices, FIRMWARE_RAM, strict=True):
        options = dict(option.split("=", 1) for option in device.split(",")[1:])
        assert device.startswith("loader,")
        assert int(options["addr"], 16) == start
        assert options["force-raw"] == "on"  # zeros are never taken for an ELF or U-Boot image
        data = Path(options["file"])
        assert data.parent == tmp_path and data.stat().st_size == length
        assert data.read_bytes() == bytes(length)


def test_the_regions_are_the_firmwares_and_inside_the_units_ram() -> None:
    (low, low_length), (top, top_length) = FIRMWARE_RAM
    # OVMF's fixed early RAM: work areas and SEC/PEI temporary RAM from 8 MiB, the decompressed PEI and
    # DXE volumes up to 22 MiB (where the silent firmware was sampled, writing 0x1455000 to 0x15df000)
    assert low == 8 * MIB and low + low_length == 22 * MIB
    assert low <= 0x1455000 and low + low_length > 0x15DF000
    # the top of RAM, where PEI puts its permanent memory and DXE its core (sampled at 0x5febc3bd)
    assert top + top_length == MEMORY and top <= 0x5FEBC3BD < MEMORY
    assert low + low_length <= top
