// The verifier page: camera (BarcodeDetector, else the bundled zxing-wasm decoder), a photo or typed text,
// the checks of core.js, the verdict in large type in Kyrgyz, Russian and English, and, when online, the
// receiver's registry and inclusion proof. Checked records are kept in localStorage to check the chain.
"use strict";

(() => {
  const C = PollboxCore;
  const $ = (id) => document.getElementById(id);
  const trust = JSON.parse($("pollbox-trust").textContent || "null") || {};
  const receiverUrl = trust.receiver_url || (location.protocol.startsWith("http") ? location.origin : null);
  const timings = (window.pollboxTimings = {});
  let lang = localStorage.getItem("pollbox-lang") || ({ ru: "ru", en: "en" }[(navigator.language || "").slice(0, 2)] || "ky");
  let registry = null, registrySource = "source_built", lastResult = null, stream = null, scanning = false;

  const t = (key, args) => (PollboxText[lang][key] || key).replace(/\{(\w+)\}/g, (_, k) => (args || {})[k]);

  function renderStatic() {
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
    document.querySelectorAll("#langs button").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.lang === lang)));
    $("registry").textContent = registry ? t("registry_ok", { n: registry.devices, source: t(registrySource) }) : t("registry_bad");
    $("registry").className = registry ? "note" : "note bad";
    if (lastResult) renderResult(lastResult);
  }

  async function loadTrust() {
    const stored = localStorage.getItem("pollbox-registry");
    for (const [text, source] of [[trust.registry, "source_built"], [stored, "source_receiver"]]) {
      if (!text || !trust.cec_key) continue;
      try {
        registry = await C.loadRegistry(text, trust.cec_key);
        registrySource = source;
        break;
      } catch (e) { /* an unusable snapshot is ignored; the page says no registry is in force */ }
    }
    renderStatic();
    if (!receiverUrl || !trust.cec_key) return;
    try {
      const text = await fetchText("/api/v1/registry");
      const fresh = await C.loadRegistry(text, trust.cec_key);
      if (!C.keepsRevocations(registry, fresh)) return; // an older registry served again: never undo a revocation
      registry = fresh;
      registrySource = "source_receiver";
      localStorage.setItem("pollbox-registry", text);
      renderStatic();
    } catch (e) { /* offline, or the receiver's copy does not verify: keep the snapshot */ }
  }

  async function fetchText(path) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 4000);
    try {
      const response = await fetch(receiverUrl + path, { signal: abort.signal, cache: "no-store" });
      if (!response.ok) { const e = new Error("http " + response.status); e.status = response.status; throw e; }
      return await response.text();
    } finally {
      clearTimeout(timer);
    }
  }

  // A record's chain: its station, and its unit (docs/units.md) for a unit other than the station's main desk.
  function chainKey(f, seq) {
    return f.unit === undefined ? f.station + "/" + seq : f.station + "/" + f.unit + "/" + seq;
  }

  function remember(record) {
    const seen = JSON.parse(localStorage.getItem("pollbox-seen") || "{}");
    seen[chainKey(record.fields, record.fields.seq)] = record.line;
    localStorage.setItem("pollbox-seen", JSON.stringify(seen));
  }

  async function previousLine(f) {
    const seen = JSON.parse(localStorage.getItem("pollbox-seen") || "{}");
    const kept = seen[chainKey(f, f.seq - 1)];
    if (kept) return kept;
    if (!receiverUrl || f.seq < 2) return null;
    const unit = f.unit === undefined ? "" : `?unit=${encodeURIComponent(f.unit)}`;
    try {
      return JSON.parse(await fetchText(`/api/v1/records/${encodeURIComponent(f.station)}/${f.seq - 1}${unit}`)).line;
    } catch (e) {
      return null;
    }
  }

  async function checkChain(record) {
    const f = record.fields;
    if (f.seq === 1) return f.prev === "0".repeat(64) ? { ok: true, seq: 0 } : { ok: false };
    const line = await previousLine(f);
    if (!line) return null;
    const previous = await C.verifyLine(line, registry, null).catch(() => null);
    if (!previous) return null;
    const sameChain = previous.fields.station === f.station && previous.fields.unit === f.unit;
    return { ok: sameChain && previous.hash === f.prev, seq: f.seq - 1 };
  }

  async function checkInclusion(record) {
    if (!receiverUrl || !trust.receiver_key) return { state: "proof_offline" };
    let headLine, proofText;
    try {
      headLine = JSON.parse(await fetchText("/api/v1/tree/head")).tree_head;
    } catch (e) {
      return { state: "proof_offline" };
    }
    try {
      const head = await C.verifyTreeHead(headLine, trust.receiver_key);
      try {
        proofText = await fetchText(`/api/v1/tree/proof?hash=${record.hash}&size=${head.size}`);
      } catch (e) {
        return { state: e.status === 404 ? "proof_missing" : "proof_offline" };
      }
      const done = await C.verifyInclusion(record.bytes, JSON.parse(proofText), head);
      return { state: "proof_ok", index: done.leaf_index, size: done.size, at: done.at };
    } catch (e) {
      return { state: "proof_bad" };
    }
  }

  async function check(text) {
    const started = performance.now();
    let result;
    try {
      if (!registry) throw new C.Invalid("registry_bad");
      const record = await C.verifyLine(text, registry, trust.election || null);
      const chain = await checkChain(record);
      if (chain && !chain.ok) {
        result = { ok: false, code: "chain_broken", fields: record.fields };
      } else {
        remember(record);
        result = { ok: true, record, chain, fields: record.fields, proof: { state: receiverUrl ? "…" : "proof_offline" } };
      }
    } catch (e) {
      if (!(e instanceof C.Invalid)) throw e;
      result = { ok: false, code: e.code, detail: e.detail };
    }
    timings.verify_ms = performance.now() - started;
    timings.verdict = performance.now();
    lastResult = result;
    renderResult(result);
    if (result.ok && receiverUrl) {
      result.proof = await checkInclusion(result.record);
      if (lastResult === result) renderResult(result);
    }
    return result;
  }

  function row(label, value) {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    const td = document.createElement("td");
    th.textContent = label;
    td.textContent = value;
    tr.append(th, td);
    return tr;
  }

  function renderResult(r) {
    const box = $("verdict");
    box.hidden = false;
    box.dataset.state = r.ok ? "valid" : "invalid";
    box.dataset.code = r.ok ? "valid" : r.code;
    box.className = r.ok ? "verdict valid" : "verdict invalid";
    const word = document.createElement("span");
    word.className = "word";
    word.textContent = r.ok ? "✔ " + t("valid") : "✘ " + t("invalid") + ":";
    const reason = document.createElement("span");
    reason.className = "reason";
    reason.textContent = r.ok ? "" : t("reason_" + r.code);
    $("verdict-word").replaceChildren(word, " ", reason);
    const table = $("facts");
    table.replaceChildren();
    const f = r.ok ? r.fields : null;
    $("kind").textContent = f ? t(C.COUNTS[f.type] ? f.type : "other_record") : "";
    if (f) {
      table.append(row(t("station"), f.station));
      for (const name of C.COUNTS[f.type] || []) table.append(row(t(name), String(f.body[name])));
      const at = row(t("signed_at"), f.at.slice(0, 10) + " " + f.at.slice(11, 19));
      at.className = "time";
      table.append(at, row(t("record"), String(f.seq)));
      const key = row(t("key"), f.key);
      key.className = "small";
      table.append(key);
      if (typeof f.body.software_version === "string" && typeof f.body.software_hash === "string") {
        const software = row(t("software"), f.body.software_version + " · " + f.body.software_hash.slice(0, 16));
        software.className = "small software";
        table.append(software);
      }
      const b = f.body;
      if (typeof b.system_slot === "string" && typeof b.system_version === "string"
          && typeof b.system_hash === "string") {
        const system = row(t("system"), b.system_slot + " · " + b.system_version + " · " + b.system_hash.slice(0, 16));
        system.className = "small system";
        table.append(system);
      }
    }
    const notes = [];
    if (r.ok) {
      notes.push(["chain", r.chain ? t("chain_ok", { seq: r.chain.seq }) : t("chain_unknown")]);
      if (r.proof && r.proof.state !== "…") {
        notes.push(["proof", t(r.proof.state, { index: r.proof.index, size: r.proof.size, at: r.proof.at })]);
      }
    }
    $("notes").replaceChildren(...notes.map(([kind, text]) => {
      const p = document.createElement("p");
      p.id = "note-" + kind;
      p.dataset.state = kind === "proof" ? r.proof.state : "";
      p.textContent = text;
      return p;
    }));
  }

  // Reading QR codes: the browser's BarcodeDetector when it has one, else zxing-wasm from this file.
  let zxingReady = null;
  function zxing() {
    if (!zxingReady) {
      zxingReady = (async () => {
        const packed = Uint8Array.from(atob($("zxing-wasm").textContent.trim()), (c) => c.charCodeAt(0));
        const wasm = await new Response(new Blob([packed]).stream().pipeThrough(new DecompressionStream("gzip"))).arrayBuffer();
        await ZXingWASM.prepareZXingModule({ overrides: { wasmBinary: wasm }, fireImmediately: true });
      })();
    }
    return zxingReady;
  }

  let detector;
  async function decode(source, canvas) {
    if (detector === undefined) {
      detector = null;
      if ("BarcodeDetector" in window) {
        const formats = await BarcodeDetector.getSupportedFormats().catch(() => []);
        if (formats.includes("qr_code")) detector = new BarcodeDetector({ formats: ["qr_code"] });
      }
      timings.decoder = detector ? "BarcodeDetector" : "zxing-wasm";
    }
    if (detector) {
      const found = await detector.detect(source);
      return found.length ? found[0].rawValue : null;
    }
    await zxing();
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    canvas.width = source.videoWidth || source.width;
    canvas.height = source.videoHeight || source.height;
    ctx.drawImage(source, 0, 0);
    const found = await ZXingWASM.readBarcodes(ctx.getImageData(0, 0, canvas.width, canvas.height),
      { formats: ["QRCode"], tryHarder: true, maxNumberOfSymbols: 1 });
    return found.length && found[0].isValid ? found[0].text : null;
  }

  async function startCamera() {
    if (scanning) return stopCamera();
    const video = $("video");
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
    } catch (e) {
      $("status").textContent = t("no_camera");
      return;
    }
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    timings.camera = performance.now();
    scanning = true;
    $("scan").dataset.t = "stop";
    $("scan").textContent = t("stop");
    $("status").textContent = t("looking");
    const canvas = document.createElement("canvas");
    while (scanning) {
      const text = video.readyState >= 2 ? await decode(video, canvas).catch(() => null) : null;
      if (text !== null) {
        timings.qr_read = performance.now();
        stopCamera();
        $("status").textContent = "";
        await check(text);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  function stopCamera() {
    scanning = false;
    if (stream) stream.getTracks().forEach((track) => track.stop());
    stream = null;
    $("video").hidden = true;
    $("scan").dataset.t = "scan";
    $("scan").textContent = t("scan");
  }

  async function readPhoto(file) {
    const bitmap = await createImageBitmap(file);
    const text = await decode(bitmap, document.createElement("canvas")).catch(() => null);
    if (text === null) {
      $("status").textContent = t("no_qr_in_photo");
      return;
    }
    $("status").textContent = "";
    await check(text);
  }

  $("scan").addEventListener("click", startCamera);
  $("photo").addEventListener("change", (e) => e.target.files[0] && readPhoto(e.target.files[0]));
  $("check").addEventListener("click", () => check($("text").value.replace(/\r?\n$/, "")));
  document.querySelectorAll("#langs button").forEach((b) => b.addEventListener("click", () => {
    lang = b.dataset.lang;
    localStorage.setItem("pollbox-lang", lang);
    renderStatic();
  }));
  if ("serviceWorker" in navigator && location.protocol.startsWith("http")) {
    navigator.serviceWorker.register("verify-sw.js", { scope: "./" }).catch(() => {});
  }
  window.pollboxVerifier = { check, ready: loadTrust().then(() => true) };
})();
