"""Build and documentation tools that are not part of the running unit: wiring drawings, the screen's font."""
