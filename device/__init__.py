"""pollbox device software: the appliance that runs inside a polling-station unit."""

__version__ = "0.1.0"
