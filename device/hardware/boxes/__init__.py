"""Ballot box unit backends: the direct GPIO unit and the smart box (RP2040 over UART).

Both implement ``device.hardware.interfaces.BallotBox`` and plug in at the same
place: ``device.hardware.registry`` chooses by ``hardware.ballot_box`` and calls
the constructor with the backend's typed settings from ``device.config`` (the
``PinMap`` of ``[hardware.pins]``, the port and speed of ``[hardware.smartbox]``);
the backends themselves never read the config. Shared parts: the pin map
(``pins.py``), the heartbeat watchdog and timer thread (``watchdog.py``) and
the technician self-test (``selftest.py``). The simulated box lives in
``device/hardware/sim/box.py``.
"""
