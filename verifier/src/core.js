// The verifier's checks, with no page in them: a signed record line, the CEC-signed device registry,
// a signed tree head and an RFC 6962 inclusion proof (docs/protocol.md). Everything is WebCrypto
// (SHA-256, Ed25519, and ECDSA P-256 for a unit whose key is in a TPM: "alg":"p256"). A check that fails throws Invalid with a code the page names in three languages.
"use strict";

const PollboxCore = (() => {
  const FIELDS = ["at", "body", "key", "prev", "seq", "station", "type", "v"];
  // "unit": a unit other than its station's main desk signs its own chain (docs/units.md); its id is checked here.
  const OPTIONAL_FIELDS = ["training", "alg", "unit"];
  const AT_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
  const SIG_RE = /^[A-Za-z0-9_-]{86} \{/;
  const REGISTRY_FORMAT = "pollbox-device-registry/1";
  const COUNTS = {
    polls_closed: ["identified", "ballots", "difference", "alarms_total", "alarms_open"],
    polls_opened: ["identified", "ballots"],
    turnout_snapshot: ["identified", "ballots", "registered"],
  };

  class Invalid extends Error {
    constructor(code, detail) {
      super(code + (detail ? ": " + JSON.stringify(detail) : ""));
      this.code = code;
      this.detail = detail || {};
    }
  }

  const utf8 = new TextEncoder();

  function b64ToBytes(text, url) {
    let s = text;
    if (url) {
      s = s.replace(/-/g, "+").replace(/_/g, "/");
      while (s.length % 4) s += "=";
    }
    const raw = atob(s);
    const out = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function fromHex(text) {
    if (!/^([0-9a-f]{2})*$/.test(text)) throw new Invalid("bad_proof", { value: text });
    const out = new Uint8Array(text.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
    return out;
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }

  // Canonical JSON (docs/protocol.md section 2): sorted keys, no whitespace, non-ASCII as itself.
  function canonical(value) {
    if (value === null) return "null";
    if (typeof value === "boolean") return value ? "true" : "false";
    if (typeof value === "number") {
      if (!Number.isSafeInteger(value)) throw new Invalid("not_ours", { why: "a number that is not a whole number" });
      return String(value);
    }
    if (typeof value === "string") return JSON.stringify(value);
    if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
    const keys = Object.keys(value).sort();
    return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonical(value[k])).join(",") + "}";
  }

  // Where the JSON object starting at ``start`` ends (the index after its closing brace), or -1.
  function objectEnd(text, start) {
    let depth = 0, inString = false, escaped = false;
    for (let i = start; i < text.length; i++) {
      const c = text[i];
      if (inString) {
        if (escaped) escaped = false;
        else if (c === "\\") escaped = true;
        else if (c === '"') inString = false;
        continue;
      }
      if (c === '"') inString = true;
      else if (c === "{" || c === "[") depth++;
      else if (c === "}" || c === "]") {
        depth--;
        if (depth === 0) return i + 1;
      }
    }
    return -1;
  }

  // A signed line: 86 characters of base64url signature, a space, the canonical record bytes.
  function parseLine(text) {
    if (!SIG_RE.test(text)) throw new Invalid("not_ours");
    const end = objectEnd(text, 87);
    if (end < 0) throw new Invalid("truncated");
    if (end !== text.length) throw new Invalid("extra_bytes", { extra: text.length - end });
    const recordText = text.slice(87);
    let fields;
    try {
      fields = JSON.parse(recordText);
    } catch (e) {
      throw new Invalid("not_ours");
    }
    checkFields(fields);
    if (canonical(fields) !== recordText) throw new Invalid("altered", { why: "not_canonical" });
    return { signature: b64ToBytes(text.slice(0, 86), true), bytes: utf8.encode(recordText), fields, line: text };
  }

  function checkFields(f) {
    if (typeof f !== "object" || f === null || Array.isArray(f)) throw new Invalid("not_ours");
    const names = Object.keys(f).filter((k) => !OPTIONAL_FIELDS.includes(k)).sort();
    if (names.join(",") !== FIELDS.join(",") || f.v !== 1) throw new Invalid("not_ours");
    const ok = typeof f.station === "string" && f.station.length > 0 && f.station.length <= 64
      && /^[0-9a-f]{16}$/.test(f.key) && Number.isSafeInteger(f.seq) && f.seq >= 1
      && /^[0-9a-f]{64}$/.test(f.prev) && typeof f.at === "string" && AT_RE.test(f.at)
      && typeof f.type === "string" && /^[a-z0-9_]{1,64}$/.test(f.type)
      && typeof f.body === "object" && f.body !== null && !Array.isArray(f.body)
      && (f.training === undefined || typeof f.training === "boolean")
      && (f.alg === undefined || f.alg === "p256")
      && (f.unit === undefined || (typeof f.unit === "string" && /^[a-z0-9][a-z0-9-]{0,31}$/.test(f.unit)));
    if (!ok) throw new Invalid("not_ours");
    for (const name of COUNTS[f.type] || []) {
      if (!Number.isSafeInteger(f.body[name])) throw new Invalid("not_ours", { missing: name });
    }
  }

  async function keyId(raw) {
    return hex(await sha256(raw)).slice(0, 16);
  }

  async function ed25519Verify(rawKey, signature, bytes) {
    let key;
    try {
      key = await crypto.subtle.importKey("raw", rawKey, { name: "Ed25519" }, false, ["verify"]);
    } catch (e) {
      throw new Invalid("no_ed25519");
    }
    return crypto.subtle.verify({ name: "Ed25519" }, key, signature, bytes);
  }

  // ECDSA P-256 with SHA-256; the record's 64 signature bytes are r || s, as WebCrypto takes them.
  async function p256Verify(rawKey, signature, bytes) {
    let key;
    try {
      key = await crypto.subtle.importKey("raw", rawKey, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
    } catch (e) {
      throw new Invalid("altered", { why: "key" });
    }
    return crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, signature, bytes);
  }

  // The CEC-signed device registry: its devices by key id, after checking the CEC's signature.
  async function loadRegistry(text, cecKeyB64) {
    let doc;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw new Invalid("registry_bad");
    }
    if (!doc || doc.format !== REGISTRY_FORMAT || !Array.isArray(doc.devices) || typeof doc.signature !== "string") {
      throw new Invalid("registry_bad");
    }
    const signed = utf8.encode(canonical(doc.devices));
    if (!(await ed25519Verify(b64ToBytes(cecKeyB64), b64ToBytes(doc.signature), signed))) {
      throw new Invalid("registry_bad", { why: "signature" });
    }
    const byKey = new Map();
    for (const d of doc.devices) {
      const raw = b64ToBytes(d.public_key);
      const alg = d.alg === undefined ? "ed25519" : d.alg;
      const size = alg === "p256" ? 65 : alg === "ed25519" ? 32 : -1;
      if (raw.length !== size || (await keyId(raw)) !== d.key_id) throw new Invalid("registry_bad", { why: "key_id" });
      byKey.set(d.key_id, { ...d, alg, raw });
    }
    return { byKey, devices: doc.devices.length, text };
  }

  // Whether ``fresh`` keeps every revocation ``current`` has (a revocation is never undone).
  function keepsRevocations(current, fresh) {
    if (!current) return true;
    for (const [key, device] of current.byKey) {
      if (!device.revocation) continue;
      const now = fresh.byKey.get(key);
      if (!now || !now.revocation || now.revocation.last_seq !== device.revocation.last_seq) return false;
    }
    return true;
  }

  // Check one scanned line against the registry (and the election's day, when known).
  async function verifyLine(text, registry, election) {
    const record = parseLine(text);
    const f = record.fields;
    const device = registry.byKey.get(f.key);
    if (!device) throw new Invalid("foreign_key", { key: f.key });
    if (device.station !== f.station) throw new Invalid("foreign_key", { key: f.key, enrolled: device.station });
    if ((f.alg || "ed25519") !== device.alg) throw new Invalid("altered", { why: "alg" });
    const verify = device.alg === "p256" ? p256Verify : ed25519Verify;
    if (!(await verify(device.raw, record.signature, record.bytes))) throw new Invalid("altered", { why: "signature" });
    if (device.revocation && f.seq > device.revocation.last_seq) {
      throw new Invalid("revoked_key", { at: device.revocation.at, last_seq: device.revocation.last_seq });
    }
    if (election && (f.at < election.from || f.at >= election.to)) {
      throw new Invalid("wrong_election", { at: f.at, date: election.date });
    }
    if (f.training === true || f.body.training === true) throw new Invalid("training");
    record.hash = hex(await sha256(record.bytes));
    record.device = device;
    return record;
  }

  // A tree head signed by the receiver: {at, key, root, size, type: "tree_head", v: 1}.
  async function verifyTreeHead(line, receiverKeyB64) {
    if (!SIG_RE.test(line)) throw new Invalid("bad_head");
    const text = line.slice(87);
    const raw = b64ToBytes(receiverKeyB64);
    if (!(await ed25519Verify(raw, b64ToBytes(line.slice(0, 86), true), utf8.encode(text)))) throw new Invalid("bad_head");
    const head = JSON.parse(text);
    if (head.type !== "tree_head" || head.key !== (await keyId(raw)) || !Number.isSafeInteger(head.size)) {
      throw new Invalid("bad_head");
    }
    return head;
  }

  // RFC 9162 section 2.1.3.2: the audit path from the record's leaf to the head's root.
  async function verifyInclusion(recordBytes, proof, head) {
    const leaf = await sha256(concat(new Uint8Array([0]), recordBytes));
    if (proof.leaf_hash !== hex(leaf) || proof.tree_size !== head.size) throw new Invalid("bad_proof");
    let fn = proof.leaf_index, sn = head.size - 1, r = leaf;
    if (!(fn >= 0 && fn < head.size)) throw new Invalid("bad_proof");
    const one = new Uint8Array([1]);
    for (const node of proof.audit_path) {
      const p = fromHex(node);
      if (sn === 0) throw new Invalid("bad_proof");
      if (fn % 2 === 1 || fn === sn) {
        r = await sha256(concat(one, p, r));
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        r = await sha256(concat(one, r, p));
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    if (sn !== 0 || hex(r) !== head.root) throw new Invalid("bad_proof");
    return { leaf_index: proof.leaf_index, size: head.size, at: head.at };
  }

  return { Invalid, parseLine, verifyLine, loadRegistry, keepsRevocations, verifyTreeHead, verifyInclusion, canonical, hex, sha256, COUNTS };
})();
