"""A scripted voting day run as a separate process, for the crash test.

Prints ``ACK <seq> <kind> <index>`` after each event it has committed, so the
parent knows exactly which events were acknowledged before it kills us.
"""

from __future__ import annotations

import sys
from pathlib import Path

from device.compose import build_appliance
from device.config import load_config
from device.core.poll import PollState
from device.demo import demo_pins


def main(config: Path, voters: int) -> None:
    app = build_appliance(load_config(config))
    app.start(background=False)
    if app.state.poll is PollState.SETUP:
        app.open_polls()
        print(f"ACK {app.journal.last_seq} polls_opened -1", flush=True)
    pins = demo_pins(voters)
    for i in range(len(app.state.checkins), voters):
        decision = app.identify_manual(pins[i])
        print(f"ACK {decision.seq} {decision.outcome} {i}", flush=True)
        if decision.outcome == "admitted":
            app.sim.box.drop()
            print(f"ACK {app.journal.last_seq} ballot_counted {i}", flush=True)
        app.tick()
    print("DONE", flush=True)
    app.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
