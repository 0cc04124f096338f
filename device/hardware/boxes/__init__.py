"""Ballot box unit backends: the direct GPIO unit and the smart box (RP2040 over UART).

Both implement ``device.hardware.interfaces.BallotBox`` and plug in at the same
place (the hardware registry chooses by config name). Shared parts: the pin map
(``pins.py``), the heartbeat watchdog and timer thread (``watchdog.py``) and
the technician self-test (``selftest.py``). The simulated box lives in
``device/hardware/sim/box.py``.
"""
