"""``python -m device.hardware.touchpanel``: the touch poller (``poller.main``)."""

import sys

from .poller import main

sys.exit(main())
