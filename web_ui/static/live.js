// The chair's screen on a touchscreen with no keyboard: keeps the live region current (Server-Sent
// Events from /events, short polling of /api/status when streaming is unavailable), shows a banner
// when updates stop, drives the on-screen keypad and the lists of common reasons, and takes the
// observer view back to the status screen after a while without a touch. On the unit's own kiosk
// (http://127.0.0.1) it also posts a frame beat, so the kiosk's supervisor knows the page is drawn.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var LAYOUTS = {
    ky: ["йцукенгшщзх", "фывапролджэ", "ячсмитьбюүөң"],
    ru: ["йцукенгшщзхъ", "фывапролджэ", "ячсмитьбюё"],
    en: ["qwertyuiop", "asdfghjkl", "zxcvbnm"],
    digits: ["1234567890"]
  };
  var CYCLE = ["ky", "ru", "en", "digits"];
  var LABELS = { ky: "Кырг", ru: "Рус", en: "Eng", digits: "123" };

  setupKeypad();
  setupPicks();
  setupReturn();
  setupLive();
  setupWatch();
  setupFrameBeat();

  function setupFrameBeat() {
    // A beat is sent from inside requestAnimationFrame, which the browser runs only while it draws
    // this page into a shown window: no beats means nothing reaches the screen (web_ui/kiosk.py).
    var BEAT_MS = 5000;
    var field = document.querySelector("input[name=csrf_token]");
    if (window.location.hostname !== "127.0.0.1" || !field || !window.fetch || !window.requestAnimationFrame) {
      return;
    }
    var pending = false;
    function beat() {
      pending = false;
      if (document.visibilityState !== "visible") { return; }
      window.fetch("/kiosk/frame", { method: "POST", credentials: "same-origin", cache: "no-store",
                                     headers: { "X-CSRF-Token": field.value } }).catch(function () {});
    }
    function ask() {
      if (!pending) { pending = true; window.requestAnimationFrame(beat); }
    }
    ask();
    window.setInterval(ask, BEAT_MS);
  }

  function setupWatch() {
    // The chair's menu has no fields to lose: it reloads when its figures, alarms or poll state change.
    var watched = document.body.getAttribute("data-watch");
    if (!watched || !window.EventSource) { return; }
    var source = new EventSource("/events?view=status");
    source.addEventListener("live", function (event) {
      var match = /data-signature="([^"]*)"/.exec(event.data);
      if (match && match[1] !== watched) { source.close(); window.location.reload(); }
    });
  }

  function setupKeypad() {
    var pad = document.querySelector("[data-keypad]");
    var fields = Array.prototype.slice.call(document.querySelectorAll("input[data-keys]"));
    if (!pad || fields.length === 0) { return; }
    var active = null;
    var layout = LAYOUTS[pad.getAttribute("data-layout")] ? pad.getAttribute("data-layout") : "en";

    function key(label, value, extra) {
      var b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      b.setAttribute("data-key", value);
      if (extra) { b.className = extra; }
      return b;
    }
    function row(keys) {
      var r = document.createElement("div");
      r.className = "keyrow";
      keys.forEach(function (k) { r.appendChild(k); });
      return r;
    }
    function chars(text) {
      return text.split("").map(function (c) { return key(c, c); });
    }
    function draw() {
      pad.innerHTML = "";
      var digits = active.getAttribute("data-keys") === "digits";
      pad.className = "keypad " + (digits ? "digits" : "text");
      if (digits) {
        ["123", "456", "789"].forEach(function (r) { pad.appendChild(row(chars(r))); });
        pad.appendChild(row([key("⌫", "back", "wide"), key("0", "0"), key("✓", "enter", "primary")]));
        pad.querySelector("[data-key=back]").setAttribute("aria-label", pad.getAttribute("data-back"));
        return;
      }
      LAYOUTS[layout].forEach(function (r) { pad.appendChild(row(chars(r))); });
      var next = CYCLE[(CYCLE.indexOf(layout) + 1) % CYCLE.length];
      var bottom = [key(LABELS[next], "layout", "wide"), key(pad.getAttribute("data-space"), " ", "space"),
                    key(",", ","), key(".", "."), key("⌫", "back", "wide")];
      bottom[0].setAttribute("aria-label", pad.getAttribute("data-next"));
      bottom[4].setAttribute("aria-label", pad.getAttribute("data-back"));
      pad.appendChild(row(bottom));
    }
    function activate(field) {
      if (active) { active.classList.remove("active"); }
      active = field;
      active.classList.add("active");
      draw();
    }
    function type(value) {
      var max = parseInt(active.getAttribute("maxlength") || "200", 10);
      if (value === "back") { active.value = active.value.slice(0, -1); return; }
      if (value === "enter") {
        var next = fields[fields.indexOf(active) + 1];
        if (next) { activate(next); } else if (active.form) { active.form.requestSubmit(); }
        return;
      }
      if (value === "layout") {
        layout = CYCLE[(CYCLE.indexOf(layout) + 1) % CYCLE.length];
        draw();
        return;
      }
      var text = active.value.length === 0 ? value.toUpperCase() : value;
      active.value = (active.value + text).slice(0, max);
    }
    fields.forEach(function (f) {
      f.addEventListener("focus", function () { activate(f); });
      f.addEventListener("click", function () { activate(f); });
    });
    pad.addEventListener("click", function (event) {
      var target = event.target.closest("[data-key]");
      if (target && active) { type(target.getAttribute("data-key")); }
    });
    activate(fields.filter(function (f) { return f.value === ""; })[0] || fields[0]);
  }

  function setupPicks() {
    document.addEventListener("click", function (event) {
      var pick = event.target.closest("[data-pick]");
      if (!pick) { return; }
      var field = pick.form && pick.form.elements[pick.getAttribute("data-target")];
      if (field) { field.value = pick.getAttribute("data-pick"); field.dispatchEvent(new Event("click")); }
    });
  }

  function setupReturn() {
    var seconds = parseInt(document.body.getAttribute("data-return-after") || "0", 10);
    var to = document.body.getAttribute("data-return-to");
    if (!seconds || !to) { return; }
    var timer = null;
    function arm() {
      if (timer !== null) { window.clearTimeout(timer); }
      timer = window.setTimeout(function () { window.location.assign(to); }, seconds * 1000);
    }
    ["pointerdown", "touchstart", "keydown"].forEach(function (name) { document.addEventListener(name, arm); });
    arm();
  }

  function setupLive() {
    var live = document.getElementById("live");
    var banner = document.getElementById("conn-lost");
    if (!live) { return; }
    var view = live.getAttribute("data-view") || "status";
    var staleMs = parseInt(document.body.getAttribute("data-stale-ms") || "35000", 10);
    var pollTimer = null;
    var watchdog = null;
    var failures = 0;

    function lost(isLost) {
      if (banner) { banner.hidden = !isLost; }
      document.body.classList.toggle("conn-lost", isLost);
    }
    function heard() {
      // Any message proves the unit answers; silence longer than staleMs means updates stopped.
      if (watchdog !== null) { window.clearTimeout(watchdog); }
      watchdog = window.setTimeout(function () { lost(true); }, staleMs);
      lost(false);
    }
    function show(html) {
      if (html !== live.innerHTML) { live.innerHTML = html; }
      var source = live.querySelector("[data-poll-source]");
      var badge = document.getElementById("poll-badge");
      if (source && badge && badge.innerHTML !== source.innerHTML) {
        badge.className = source.className;
        badge.innerHTML = source.innerHTML;
      }
      heard();
    }
    function poll() {
      var request = new XMLHttpRequest();
      request.open("GET", "/api/status?view=" + encodeURIComponent(view));
      request.timeout = 5000;
      request.onload = function () {
        if (request.status === 200) { show(JSON.parse(request.responseText).html); } else { lost(true); }
      };
      request.onerror = request.ontimeout = function () { lost(true); };
      request.send();
    }
    function startPolling() {
      if (pollTimer === null) { pollTimer = window.setInterval(poll, 2000); poll(); }
    }
    heard();
    if (!window.EventSource) { startPolling(); return; }
    var source = new EventSource("/events?view=" + encodeURIComponent(view));
    source.addEventListener("live", function (event) { failures = 0; show(event.data); });
    source.addEventListener("alive", function () { failures = 0; heard(); });
    source.addEventListener("open", function () { failures = 0; heard(); });
    source.addEventListener("error", function () {
      // The stream ends every minute by design and the browser reconnects; only a failed reconnect is "lost".
      failures += 1;
      if (failures > 1 || source.readyState === EventSource.CLOSED) { lost(true); }
      if (source.readyState === EventSource.CLOSED) { startPolling(); }
    });
  }
}());
