"""A camera for the booted test copy: the kernel's ``vivid`` driver, its video output looped to its capture.

Runs inside the guest with the appliance's own interpreter (``/opt/pollbox/bin/python``: OpenCV and numpy
to read the frame files). The image has no ``v4l2-ctl``, so every V4L2 request here is a raw ``ioctl``
with the structures of ``<linux/videodev2.h>`` (64-bit layout) packed by hand.

vivid is loaded (by the test) with one capture and one output node, one HDMI input and one HDMI output.
Its "Loop Video" control (up to Linux 6.1, Debian 12's kernel; from 6.4, as in Debian 13's 6.12, the HDMI
input's "HDMI 000-0 Is Connected To" menu set to the instance's output) copies each frame written to the
output into the capture, provided both sides have the same resolution (DV timings and format), pixel
format and field order; otherwise it shows noise.

    v4l2_guest.py setup WIDTH HEIGHT [RATE]
        DV timings WIDTHxHEIGHT progressive on the HDMI input and output, the loop on, the on-screen text
        off; prints {"capture": "/dev/videoN", "output": "/dev/videoM", "rate": frames a second}. RATE
        picks, among vivid's WIDTHxHEIGHT progressive timings, the one whose frame rate is nearest to it
        (without it, the first listed). Run while nothing streams from the capture device (the timings
        cannot change then): before the appliance opens it, or with pollbox.service stopped.
    v4l2_guest.py show OUTPUT CAPTURE FPS SECONDS FRAME...
        Once the appliance has set the capture's format (OpenCV chooses the pixel format), sets the
        output to the same format, then streams the frames in turn (each FRAME a PNG) through mmap'ed
        output buffers, FPS a second, for SECONDS; prints {"streaming": wall time of the first frame
        queued} as streaming starts, and at the end {"format": ..., "frames": N, "first": that same time}.
        (vivid's output refuses write(): EINVAL in this kernel.)
    v4l2_guest.py decode DECODER TIMES FRAME
        The appliance's decoder (``zxing`` or ``zbar``, its default formats) on FRAME as the camera
        delivers it (grey, the output's size), TIMES times; prints {"ms": median wall time of one decode,
        "reads": [the symbology of each read]} (never what it read). The floor under the camera's frame-to-decision time.
    v4l2_guest.py cpu SECONDS
        The CPU time (user and system, every thread) pollbox.service's main process uses over SECONDS,
        from /proc/PID/stat; prints {"percent": of one core, "pid": PID, "seconds": the window}.

vivid has DV timings presets for both sizes the appliance is tested at: 640x480 (59.94 frames a second
only) and 1280x720 (24, 25, 30, 50 and 60). On an HDMI input vivid delivers frames at the timings' rate
and ignores the frame rate a reader asks for (OpenCV asks for the configured ``fps``), so the camera
loop runs at that rate.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import json
import mmap
import os
import struct
import sys
import time
from collections.abc import Iterator

_WRITE, _READ = 1, 2


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord("V") << 8) | nr


CAP_SIZE, FORMAT_SIZE, QUERYCTRL_SIZE, DV_SIZE, ENUM_DV_SIZE = 104, 208, 68, 132, 148
REQBUFS_SIZE, BUFFER_SIZE = 20, 88
VIDIOC_QUERYCAP = _ioc(_READ, 0, CAP_SIZE)
VIDIOC_G_FMT = _ioc(_READ | _WRITE, 4, FORMAT_SIZE)
VIDIOC_S_FMT = _ioc(_READ | _WRITE, 5, FORMAT_SIZE)
VIDIOC_REQBUFS = _ioc(_READ | _WRITE, 8, REQBUFS_SIZE)
VIDIOC_QUERYBUF = _ioc(_READ | _WRITE, 9, BUFFER_SIZE)
VIDIOC_QBUF = _ioc(_READ | _WRITE, 15, BUFFER_SIZE)
VIDIOC_DQBUF = _ioc(_READ | _WRITE, 17, BUFFER_SIZE)
VIDIOC_STREAMON = _ioc(_WRITE, 18, 4)
VIDIOC_STREAMOFF = _ioc(_WRITE, 19, 4)
VIDIOC_S_CTRL = _ioc(_READ | _WRITE, 28, 8)
VIDIOC_QUERYCTRL = _ioc(_READ | _WRITE, 36, QUERYCTRL_SIZE)
VIDIOC_S_DV_TIMINGS = _ioc(_READ | _WRITE, 87, DV_SIZE)
VIDIOC_ENUM_DV_TIMINGS = _ioc(_READ | _WRITE, 98, ENUM_DV_SIZE)
CAPTURE, OUTPUT = 1, 2  # V4L2_BUF_TYPE_VIDEO_CAPTURE, _OUTPUT
CAP_VIDEO_CAPTURE, CAP_VIDEO_OUTPUT = 0x1, 0x2
CTRL_FLAG_NEXT_CTRL = 0x80000000
FIELD_NONE = 1
MEMORY_MMAP = 1
OUTPUT_BUFFERS = 4
OSD_NONE = 2
"""vivid's "OSD Text Mode" menu: 0 all text, 1 counters only, 2 none."""


def _device_caps(path: str) -> tuple[str, int]:
    with open(path, "rb", buffering=0) as dev:
        buf = bytearray(CAP_SIZE)
        fcntl.ioctl(dev, VIDIOC_QUERYCAP, buf)
    driver = bytes(buf[:16]).split(b"\0")[0].decode()
    return driver, struct.unpack_from("<I", buf, 88)[0]  # device_caps


def _nodes() -> tuple[str, str]:
    capture = output = ""
    for path in sorted(glob.glob("/dev/video*")):
        driver, caps = _device_caps(path)
        if driver != "vivid":
            continue
        if caps & CAP_VIDEO_CAPTURE and not capture:
            capture = path
        elif caps & CAP_VIDEO_OUTPUT and not output:
            output = path
    if not capture or not output:
        raise SystemExit(f"no vivid capture and output nodes among {glob.glob('/dev/video*')}")
    return capture, output


def _controls(fd: int) -> Iterator[tuple[int, str, int]]:
    """(id, name, maximum) of each control of the device, in the driver's order."""
    ident = CTRL_FLAG_NEXT_CTRL
    while True:
        buf = bytearray(QUERYCTRL_SIZE)
        struct.pack_into("<I", buf, 0, ident)
        try:
            fcntl.ioctl(fd, VIDIOC_QUERYCTRL, buf)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                return
            raise
        found = struct.unpack_from("<I", buf, 0)[0]
        yield int(found), bytes(buf[8:40]).split(b"\0")[0].decode(), struct.unpack_from("<i", buf, 44)[0]
        ident = found | CTRL_FLAG_NEXT_CTRL


def _control(fd: int, name: str) -> int:
    """The id of the control called ``name`` on the device."""
    for ident, called, _ in _controls(fd):
        if called == name:
            return ident
    raise SystemExit(f"no control named {name!r}")


def _loop_output_to_capture(fd: int) -> None:
    """vivid's output looped into its capture: "Loop Video" on, or (Linux 6.4 and later) the HDMI input's
    "Is Connected To" menu on its first output (the menu's entries: 0 the test pattern, 1 none, then
    the instance's outputs)."""
    for ident, name, maximum in _controls(fd):
        if name == "Loop Video":
            _set_id(fd, ident, 1)
            return
        if name.startswith("HDMI ") and name.endswith(" Is Connected To") and maximum >= 2:
            _set_id(fd, ident, 2)
            return
    raise SystemExit("vivid has neither a \"Loop Video\" control nor an HDMI input connectable to its output")


def _set_id(fd: int, ident: int, value: int) -> None:
    fcntl.ioctl(fd, VIDIOC_S_CTRL, struct.pack("<Ii", ident, value))


def _set_control(fd: int, name: str, value: int) -> None:
    _set_id(fd, _control(fd, name), value)


def frame_rate(timings: bytes) -> float:
    """Frames a second of a ``struct v4l2_dv_timings`` (packed: type, then the BT.656/1120 timings: width,
    height, interlaced, polarities, a 64-bit pixel clock, the horizontal then the vertical front porch,
    sync and back porch)."""
    width, height = struct.unpack_from("<II", timings, 4)
    pixelclock = struct.unpack_from("<Q", timings, 20)[0]
    hfp, hsync, hbp, vfp, vsync, vbp = struct.unpack_from("<6I", timings, 28)
    total = (width + hfp + hsync + hbp) * (height + vfp + vsync + vbp)
    return pixelclock / total if total else 0.0


def _timings(fd: int, width: int, height: int, rate: float | None = None) -> bytes:
    """The device's own DV timings entry for ``width`` x ``height`` progressive: the first listed, or the one
    whose frame rate is nearest to ``rate``."""
    index, found = 0, []
    while True:
        buf = bytearray(ENUM_DV_SIZE)
        struct.pack_into("<I", buf, 0, index)
        try:
            fcntl.ioctl(fd, VIDIOC_ENUM_DV_TIMINGS, buf)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                break
            raise
        timings = bytes(buf[16:16 + DV_SIZE])
        w, h, interlaced = struct.unpack_from("<III", timings, 4)
        if (w, h, interlaced) == (width, height, 0):
            if rate is None:
                return timings
            found.append(timings)
        index += 1
    if not found:
        raise SystemExit(f"no {width}x{height} progressive DV timings among vivid's {index}")
    return min(found, key=lambda t: abs(frame_rate(t) - (rate or 0.0)))


def setup(width: int, height: int, rate: float | None = None) -> None:
    capture, output = _nodes()
    chosen = b""
    for path in (capture, output):
        fd = os.open(path, os.O_RDWR)
        try:
            chosen = _timings(fd, width, height, rate)
            fcntl.ioctl(fd, VIDIOC_S_DV_TIMINGS, bytearray(chosen))
            if path == capture:
                _loop_output_to_capture(fd)
                _set_control(fd, "OSD Text Mode", OSD_NONE)
        finally:
            os.close(fd)
    print(json.dumps({"capture": capture, "output": output, "rate": round(frame_rate(chosen), 2)}))


def _format(fd: int, kind: int) -> tuple[int, int, int, int, int]:
    """(width, height, pixel format, field, bytes per line) of the device's ``kind`` side."""
    buf = bytearray(FORMAT_SIZE)
    struct.pack_into("<I", buf, 0, kind)
    fcntl.ioctl(fd, VIDIOC_G_FMT, buf)
    width, height, fourcc, field, stride = struct.unpack_from("<IIIII", buf, 8)
    return width, height, fourcc, field, stride


def _fourcc(code: int) -> str:
    return struct.pack("<I", code).decode("ascii", "replace")


def _frame_bytes(png: str, width: int, height: int, fourcc: str, stride: int) -> bytes:
    import cv2  # the appliance's interpreter has it; the guest's python3 has not
    import numpy as np

    gray = cv2.imread(png, cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise SystemExit(f"cannot read {png}")
    gray = cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA) if gray.shape != (height, width) else gray
    if fourcc == "BGR3" or fourcc == "RGB3":
        pixels = np.dstack([gray, gray, gray])
    elif fourcc == "GREY":
        pixels = gray
    elif fourcc == "YUYV":
        pixels = np.empty((height, width, 2), np.uint8)
        pixels[:, :, 0] = gray
        pixels[:, :, 1] = 128
    else:
        raise SystemExit(f"the capture is set to {fourcc}, which this helper cannot write")
    rows = pixels.reshape(height, -1)
    if rows.shape[1] < stride:
        rows = np.hstack([rows, np.zeros((height, stride - rows.shape[1]), np.uint8)])
    return rows.tobytes()


def show(output: str, capture: str, fps: float, seconds: float, frames: list[str]) -> None:
    deadline = time.monotonic() + 120
    while True:  # the appliance sets the capture's format when it opens the camera
        cap = os.open(capture, os.O_RDWR)
        try:
            width, height, fourcc, field, _ = _format(cap, CAPTURE)
        finally:
            os.close(cap)
        if time.monotonic() > deadline or (width, height) != (0, 0):
            break
        time.sleep(0.2)
    out = os.open(output, os.O_RDWR)
    try:
        buf = bytearray(FORMAT_SIZE)
        struct.pack_into("<I", buf, 0, OUTPUT)
        struct.pack_into("<IIII", buf, 8, width, height, fourcc, field or FIELD_NONE)
        fcntl.ioctl(out, VIDIOC_S_FMT, buf)
        got = _format(out, OUTPUT)
        if got[:3] != (width, height, fourcc):
            raise SystemExit(f"the output took {got[0]}x{got[1]} {_fourcc(got[2])}, "
                             f"not the capture's {width}x{height} {_fourcc(fourcc)}")
        data = [_frame_bytes(f, width, height, _fourcc(fourcc), got[4]) for f in frames]
        written, first = _stream(out, data, field or FIELD_NONE, fps, seconds)
    finally:
        os.close(out)
    print(json.dumps({"format": f"{width}x{height} {_fourcc(fourcc)} field {field}", "frames": written,
                      "first": first}))


def _buffer(index: int, field: int = 0, used: int = 0) -> bytearray:
    """A ``struct v4l2_buffer`` for an mmap'ed output buffer: index, type, bytesused, flags, field, ...,
    memory at offset 60 (the mmap offset comes back at 64, the length at 72)."""
    buf = bytearray(BUFFER_SIZE)
    struct.pack_into("<IIIII", buf, 0, index, OUTPUT, used, 0, field)
    struct.pack_into("<I", buf, 60, MEMORY_MMAP)
    return buf


def _stream(fd: int, data: list[bytes], field: int, fps: float, seconds: float) -> tuple[int, float]:
    """Queue ``data``'s frames in turn into the output for ``seconds``; (frames queued, wall time of the first)."""
    req = bytearray(REQBUFS_SIZE)
    struct.pack_into("<III", req, 0, OUTPUT_BUFFERS, OUTPUT, MEMORY_MMAP)
    fcntl.ioctl(fd, VIDIOC_REQBUFS, req)
    count = struct.unpack_from("<I", req, 0)[0]
    maps = []
    for index in range(count):
        buf = _buffer(index)
        fcntl.ioctl(fd, VIDIOC_QUERYBUF, buf)
        offset, length = struct.unpack_from("<I", buf, 64)[0], struct.unpack_from("<I", buf, 72)[0]
        maps.append(mmap.mmap(fd, length, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=offset))
    queued, first = 0, time.time()

    def queue(index: int) -> None:
        nonlocal queued
        frame = data[queued % len(data)]
        maps[index][:len(frame)] = frame
        fcntl.ioctl(fd, VIDIOC_QBUF, _buffer(index, field, len(frame)))
        queued += 1

    for index in range(count):
        queue(index)
    fcntl.ioctl(fd, VIDIOC_STREAMON, struct.pack("<I", OUTPUT))
    print(json.dumps({"streaming": first}), flush=True)
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            buf = _buffer(0)
            fcntl.ioctl(fd, VIDIOC_DQBUF, buf)  # blocks until the output has shown a frame
            queue(struct.unpack_from("<I", buf, 0)[0])
            time.sleep(1.0 / fps)  # a camera's pace
    finally:
        fcntl.ioctl(fd, VIDIOC_STREAMOFF, struct.pack("<I", OUTPUT))
        for m in maps:
            m.close()
    return queued, first


def decode(name: str, times: int, png: str) -> None:
    import statistics

    import cv2

    from device.hardware.decoders import load_decoder

    gray = cv2.imread(png, cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise SystemExit(f"cannot read {png}")
    decoder = load_decoder(name)
    spent, reads = [], []
    for _ in range(times):
        t0 = time.perf_counter()
        reads = decoder.decode(gray)
        spent.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({"ms": statistics.median(spent), "reads": [r.symbology for r in reads]}))


def cpu(seconds: float) -> None:
    import subprocess

    pid = int(subprocess.run(["systemctl", "show", "-p", "MainPID", "--value", "pollbox.service"],
                             capture_output=True, text=True, check=True).stdout.strip() or 0)
    if pid <= 0:
        raise SystemExit("pollbox.service is not running")

    def used() -> float:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    t0, c0 = time.monotonic(), used()
    time.sleep(seconds)
    t1, c1 = time.monotonic(), used()
    print(json.dumps({"percent": 100.0 * (c1 - c0) / (t1 - t0), "pid": pid, "seconds": t1 - t0}))


def main(argv: list[str]) -> None:
    if argv[:1] == ["setup"]:
        setup(int(argv[1]), int(argv[2]), float(argv[3]) if len(argv) > 3 else None)
    elif argv[:1] == ["show"]:
        show(argv[1], argv[2], float(argv[3]), float(argv[4]), argv[5:])
    elif argv[:1] == ["decode"]:
        decode(argv[1], int(argv[2]), argv[3])
    elif argv[:1] == ["cpu"]:
        cpu(float(argv[1]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
