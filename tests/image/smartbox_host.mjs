// The smart box on the host's end of a real serial line: the firmware (device/firmware) under the
// MicroPython interpreter (the WebAssembly port, run by Node; tests/box/install_micropython.sh installs
// it), its UART joined to a Unix socket: in test_kernel_smartbox.py, the end of the test's cable relay,
// which holds QEMU's socket of the guest's /dev/ttyS1 (so closing this end is a pulled cable).
//
//   node smartbox_host.mjs MICROPYTHON-PACKAGE FIRMWARE-DIR SOCKET COUNTERS-FILE
//
// `machine` is a small MicroPython module written here: Pin values and the UART's bytes go through the
// JS module `hostbox`. The firmware's own Board runs one step a millisecond, as main.py does on the
// Pico. Its counters file (the Pico's flash) is kept in COUNTERS-FILE, so ending this process and
// starting it again is a power cycle of the box. Standard input takes commands, one a line:
//   beam 0|1, lid 0|1   what the sensors see (1: beam blocked, lid open)
//   unplug, plug       the serial cable pulled out (the socket closed) and put back
//   cut                the cable pulled in the middle of the next frame the box sends
// Standard output reports, one a line: "ready", "out PIN LEVEL" on every output change but the LED's (lock GP2),
// "line up" / "line down", and "rx N" / "tx N" byte counts every second.
import { existsSync, readFileSync, readdirSync, renameSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const [pkgDir, firmwareDir, socketPath, countersFile] = process.argv.slice(2);
const { loadMicroPython } = await import(pathToFileURL(join(pkgDir, "micropython.mjs")).href);
const say = (line) => process.stdout.write(line + "\n");
let failed = false;
const mp = await loadMicroPython({
  stdout: (line) => say("print " + line),
  stderr: (line) => { failed = true; process.stderr.write(line + "\n"); },
});

const MACHINE = `
import binascii
import hostbox

class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1

    def __init__(self, number, mode=0, pull=None, value=None):
        self.number = number
        if value is not None:
            self.value(value)

    def value(self, level=None):
        if level is None:
            return hostbox.level(self.number)
        hostbox.drive(self.number, 1 if level else 0)

class UART:
    def __init__(self, uart, baudrate=115200, tx=None, rx=None):
        pass

    def read(self):
        data = hostbox.take()
        return binascii.unhexlify(data) if data else None

    def write(self, data):
        hostbox.send(binascii.hexlify(data).decode())
        return len(data)

class WDT:
    def __init__(self, timeout=1000):
        pass

    def feed(self):
        pass

def unique_id():
    return binascii.unhexlify("e6614104031b6d2a")
`;

const PINS = { beam: 3, lid: 4 };
const LED = 25; // the alive blink: not reported
const levels = { 3: 0, 4: 0 };
const driven = {};
let received = [];
let line = null;
let cutting = false;
let rx = 0;
let tx = 0;

function plug() {
  const sock = connect(socketPath);
  sock.on("connect", () => { line = sock; say("line up"); });
  sock.on("data", (data) => { rx += data.length; received.push(data); });
  sock.on("error", (err) => say("line error " + err.code));
  sock.on("close", () => { if (line === sock) { line = null; say("line down"); } });
}

mp.registerJsModule("hostbox", {
  take() {
    if (received.length === 0) return "";
    const data = Buffer.concat(received);
    received = [];
    return data.toString("hex");
  },
  send(hex) {
    const data = Buffer.from(hex, "hex");
    tx += data.length;
    if (line === null) return;
    if (cutting) { // the cable pulled while this frame is on the wire: half of it gets through
      const sock = line;
      line = null;
      cutting = false;
      sock.end(data.subarray(0, Math.max(1, data.length >> 1)), () => sock.destroy());
      say("line down");
      return;
    }
    line.write(data);
  },
  level(pin) { return levels[pin] ?? 0; },
  drive(pin, level) {
    if (driven[pin] !== level) { driven[pin] = level; if (pin !== LED) say(`out ${pin} ${level}`); }
  },
});

mp.FS.mkdir("/fw");
for (const name of readdirSync(firmwareDir).filter((n) => n.endsWith(".py") && n !== "main.py")) {
  mp.FS.writeFile("/fw/" + name, readFileSync(join(firmwareDir, name)));
}
mp.FS.writeFile("/fw/machine.py", MACHINE);
let saved = existsSync(countersFile) ? readFileSync(countersFile, "utf8") : "";
if (saved) mp.FS.writeFile("/fw/counters.txt", saved);
mp.runPython("import sys\nsys.path.insert(0, '/fw')\nfrom board import Board\nfrom boxstore import CounterStore\n"
  + "board = Board(CounterStore('/fw/counters.txt'), 0)\n");

function keepCounters() {
  let now = "";
  try { now = mp.FS.readFile("/fw/counters.txt", { encoding: "utf8" }); } catch { return; }
  if (now !== saved) { writeFileSync(countersFile + ".tmp", now); renameSync(countersFile + ".tmp", countersFile); saved = now; }
}

const start = performance.now();
let steps = 0;
setInterval(() => {
  try {
    mp.runPython(`board.step(${Math.floor(performance.now() - start)})`);
  } catch (err) {
    process.stderr.write(String(err.message || err) + "\n");
    process.exit(1);
  }
  if (failed) process.exit(1);
  if (++steps % 20 === 0) keepCounters();
}, 1);
setInterval(() => say(`rx ${rx} tx ${tx}`), 1000);

createInterface({ input: process.stdin }).on("line", (command) => {
  const [what, value] = command.trim().split(/\s+/);
  if (what in PINS) levels[PINS[what]] = Number(value) ? 1 : 0;
  else if (what === "unplug") { if (line !== null) { const sock = line; line = null; sock.destroy(); say("line down"); } }
  else if (what === "plug") plug();
  else if (what === "cut") cutting = true;
  else say("unknown " + command);
}).on("close", () => process.exit(0));
plug();
say("ready");
