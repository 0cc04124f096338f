"""Hardware parts behind small interfaces, and their backends.

Each part is a ``typing.Protocol`` in ``interfaces.py``. A real backend imports
its library only inside its own module; ``registry.py`` builds a backend from
its name in config and refuses simulated ones in production mode.
"""
