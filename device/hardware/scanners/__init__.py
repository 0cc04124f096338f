"""Scan sources: cameras, handheld scanners (keyboard and serial mode), the simulated camera.

Each source implements ``device.hardware.interfaces.ScanSource`` and imports
its hardware library only in its own module (``camera`` OpenCV, ``picamera``
Picamera2, ``keyboard`` evdev, ``serial`` pyserial). ``loop.DeviceLoop`` is the
shared reconnect loop; ``keys``/``keymaps``/``burst`` turn key events and
bytes into scans; ``samples`` draws document images for the demo and tests.
"""
