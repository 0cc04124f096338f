"""Technician and CEC tools: keys, voter lists, station packages, enrollment, readiness, zeroize, OS image.

The console entry point ``pollbox-provision`` (``cli.py``) groups the commands
by who runs them: ``cec ...`` on the CEC's offline machine, ``unit ...`` on a
station unit. Each step is also a plain function so the demo set-up and the
tests drive exactly the code the technician runs.
"""
