"""Firmware logic cases, run under CPython (pytest) and under a real MicroPython interpreter.

Common subset only: plain functions named ``case_*`` with asserts, importing
the firmware modules by the flat names they have on the Pico. ``main(tmp)``
runs them all and prints one ``PASS``/``FAIL`` line each and a summary line
``RESULT <passed> <failed>``; the MicroPython run (``run.mjs``) relies on it.
"""

import boxlogic
import boxproto as bp
import boxstore
from debounce import Debouncer


class MemStore:
    def __init__(self, boot=0, drops=0):
        self.value = (boot, drops)
        self.saves = []

    def load(self):
        return self.value

    def save(self, boot, drops):
        self.value = (boot, drops)
        self.saves.append((boot, drops))


def frame(seq, kind, payload=b""):
    return bp.Frame(seq, kind, payload)


def hello(logic, now, seq=1, session=7):
    payload = bp.hello_payload(20, 1000, 1500, 4000, session)
    assert logic.on_frame(frame(seq, bp.HELLO, payload), now)


def case_crc_check_value():
    assert bp.crc16(b"123456789") == 0x29B1


def case_frames_round_trip_through_noise():
    stream = b"\x00\xb0\xff" + bp.encode(65535, bp.STATUS, b"abc") + b"\x0b\xb0" + bp.encode(0, bp.LOCK)
    dec = bp.FrameDecoder()
    got = []
    for i in range(len(stream)):
        got.extend(dec.feed(stream[i:i + 1]))
    assert [(f.seq, f.kind, f.payload) for f in got] == [(65535, bp.STATUS, b"abc"), (0, bp.LOCK, b"")]


def case_corrupted_frame_is_dropped_and_next_is_found():
    good = bp.encode(5, bp.HEARTBEAT)
    bad = bytearray(bp.encode(4, bp.ARM, bp.arm_payload(1000)))
    bad[7] ^= 0x10
    dec = bp.FrameDecoder()
    got = dec.feed(bytes(bad) + good)
    assert [f.seq for f in got] == [5]
    assert dec.crc_errors == 1


def case_sequence_numbers_wrap():
    assert bp.seq_newer(0, 65535)
    assert not bp.seq_newer(65535, 0)
    assert not bp.seq_newer(3, 3)
    assert bp.seq_gap(2, 65535) == 2


def case_debouncer_ignores_a_short_pulse():
    d = Debouncer(False, 20)
    assert not d.feed(True, 0)
    assert not d.feed(False, 10)
    assert not d.settle(100)
    assert not d.level


def case_boot_locks_and_counts_boots():
    store = MemStore(4, 9)
    logic = boxlogic.BoxLogic(store, 0, False, False)
    assert not logic.slot_open
    assert (logic.boot, logic.drops) == (5, 9)
    assert store.value == (5, 9)


def case_arm_needs_a_session():
    logic = boxlogic.BoxLogic(MemStore(), 0, False, False)
    assert not logic.on_frame(frame(1, bp.ARM, bp.arm_payload(1000)), 0)
    hello(logic, 0)
    assert logic.on_frame(frame(2, bp.ARM, bp.arm_payload(1000)), 1)
    assert logic.slot_open and logic.green


def case_drop_is_counted_saved_and_locks():
    store = MemStore()
    logic = boxlogic.BoxLogic(store, 0, False, False)
    hello(logic, 0)
    logic.on_frame(frame(2, bp.ARM, bp.arm_payload(4000)), 0)
    logic.sense(True, False, 100)
    logic.sense(True, False, 121)
    assert logic.drops == 1 and store.value[1] == 1
    assert not logic.slot_open
    logic.sense(False, False, 150)
    logic.sense(False, False, 200)
    assert logic.drops == 1


def case_drop_without_arm_is_still_counted():
    logic = boxlogic.BoxLogic(MemStore(), 0, False, False)
    logic.sense(True, False, 10)
    logic.tick(40)
    assert logic.drops == 1


def case_stale_and_duplicate_commands_are_refused():
    logic = boxlogic.BoxLogic(MemStore(), 0, False, False)
    hello(logic, 0, seq=10)
    assert logic.on_frame(frame(11, bp.ARM, bp.arm_payload(4000)), 1)
    assert logic.on_frame(frame(12, bp.LOCK), 2)
    assert not logic.on_frame(frame(11, bp.ARM, bp.arm_payload(4000)), 3)
    assert not logic.on_frame(frame(12, bp.LOCK), 3)
    assert not logic.slot_open


def case_heartbeat_loss_locks():
    logic = boxlogic.BoxLogic(MemStore(), 0, False, False)
    hello(logic, 0)
    logic.on_frame(frame(2, bp.ARM, bp.arm_payload(4000)), 0)
    logic.tick(1499)
    assert logic.slot_open
    logic.tick(1500)
    assert not logic.slot_open and logic.tripped
    assert logic.flags() & bp.F_TRIPPED


def case_heartbeat_clock_starts_with_the_first_heartbeat_after_hello():
    logic = boxlogic.BoxLogic(MemStore(), 0, False, False)
    hello(logic, 0)
    logic.tick(6000)  # the station still checks its journal: no heartbeat yet, and no trip
    assert not logic.tripped and not logic.flags() & bp.F_TRIPPED
    logic.on_frame(frame(2, bp.HEARTBEAT), 6000)
    logic.tick(7499)
    assert not logic.tripped
    logic.tick(7500)
    assert logic.tripped and logic.flags() & bp.F_TRIPPED


def case_jam_locks_and_refuses_arm():
    logic = boxlogic.BoxLogic(MemStore(), 0, False, False)
    hello(logic, 0)
    logic.sense(True, False, 0)
    logic.tick(30)
    logic.on_frame(frame(2, bp.HEARTBEAT), 500)
    logic.tick(1000)
    assert logic.jammed and logic.buzzer
    logic.on_frame(frame(3, bp.ARM, bp.arm_payload(4000)), 1001)
    assert not logic.slot_open


def case_lid_open_locks_and_counts():
    logic = boxlogic.BoxLogic(MemStore(), 0, False, False)
    hello(logic, 0)
    logic.on_frame(frame(2, bp.ARM, bp.arm_payload(4000)), 0)
    logic.sense(False, True, 10)
    logic.tick(40)
    assert not logic.slot_open and logic.lid_opens == 1 and logic.red


def case_blocked_at_boot_is_not_counted():
    logic = boxlogic.BoxLogic(MemStore(), 0, True, False)
    logic.tick(50)
    assert logic.drops == 0 and logic.flags() & bp.F_UNCOUNTED


def case_arm_window_ends():
    logic = boxlogic.BoxLogic(MemStore(), 0, False, False)
    hello(logic, 0)
    logic.on_frame(frame(2, bp.ARM, bp.arm_payload(60000)), 0)
    logic.on_frame(frame(3, bp.HEARTBEAT), 1400)
    logic.on_frame(frame(4, bp.HEARTBEAT), 2800)
    logic.tick(3999)
    assert logic.slot_open
    logic.on_frame(frame(5, bp.HEARTBEAT), 3999)
    logic.tick(4000)
    assert not logic.slot_open


def case_status_payload_round_trips():
    logic = boxlogic.BoxLogic(MemStore(2, 41), 0, False, False)
    fields = bp.unpack(bp.STATUS_FMT, logic.status())
    assert fields[0] == 3 and fields[1] == 41 and not logic.dirty


def case_counter_file_survives_and_rejects_damage(tmp):
    path = tmp + "/counters.txt"
    store = boxstore.CounterStore(path)
    assert store.load() == (0, 0) and store.fresh
    store.save(3, 1234)
    assert boxstore.CounterStore(path).load() == (3, 1234)
    with open(path, "w") as f:
        f.write(boxstore.render(3, 1234).replace("1234", "1235"))
    again = boxstore.CounterStore(path)
    assert again.load() == (0, 0) and again.fresh


CASES = [name for name in sorted(globals()) if name.startswith("case_")]


def run(name, tmp):
    fn = globals()[name]
    if name == "case_counter_file_survives_and_rejects_damage":
        fn(tmp)
    else:
        fn()


def main(tmp):
    passed = failed = 0
    for name in CASES:
        try:
            run(name, tmp)
            passed += 1
            print("PASS " + name)
        except Exception as exc:  # report every case, then the summary
            failed += 1
            print("FAIL " + name + " " + repr(exc))
    print("RESULT " + str(passed) + " " + str(failed))
    return failed
