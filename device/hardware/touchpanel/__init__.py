"""The Raspberry Pi 7-inch panel's touch controller, polled over I2C when no kernel driver takes it.

The panel's cable carries no touch interrupt line, and Debian's ``edt-ft5x06`` driver cannot work
without one. So the image runs ``pollbox-touch.service`` (``python -m device.hardware.touchpanel``):
it finds the controller the panel's device-tree overlay describes, reads its registers over I2C
(``poller``), turns them into touches (``ft5x06``, pure) and writes those to a ``uinput`` touchscreen,
which the kiosk's compositor takes like any other. When a kernel driver has bound the controller,
or there is no panel, it says so and stops.
"""
