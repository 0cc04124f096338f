// Runs the firmware logic cases under the MicroPython WebAssembly port.
// Usage: node run.mjs <micropython package dir> <staged firmware dir> <cases file>
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [pkgDir, firmwareDir, casesFile] = process.argv.slice(2);
const { loadMicroPython } = await import(pathToFileURL(join(pkgDir, "micropython.mjs")).href);
let failed = false;
const mp = await loadMicroPython({
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => { failed = true; process.stderr.write(line + "\n"); },
});
mp.FS.mkdir("/fw");
mp.FS.mkdir("/fw/tmp");
for (const name of readdirSync(firmwareDir).filter((n) => n.endsWith(".py"))) {
  mp.FS.writeFile("/fw/" + name, readFileSync(join(firmwareDir, name)));
}
mp.FS.writeFile("/fw/firmware_cases.py", readFileSync(casesFile));
try {
  mp.runPython("import sys\nsys.path.insert(0, '/fw')\nimport firmware_cases\nfirmware_cases.main('/fw/tmp')\n");
} catch (err) {
  failed = true;
  process.stderr.write(String(err.message || err) + "\n");
}
process.exit(failed ? 1 : 0);
