"""The pure core: state machines, events and decisions, with no I/O at all.

Nothing in this package reads a clock, a file, a socket or a pin. Time comes in
as arguments; effects go out as returned events. A test fails if an I/O module
is imported here.
"""
