"""``python -m device.hardware.touchpanel``: the touch poller (``poller.main``)."""

import sys

from .poller import main

if __name__ == "__main__":
    sys.exit(main())
