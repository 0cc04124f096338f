// Keeps the live region current: Server-Sent Events from /events, short polling of
// /api/status when streaming is unavailable; shows a banner while the station is unreachable.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var live = document.getElementById("live");
  var banner = document.getElementById("conn-lost");
  var printButton = document.querySelector("[data-print]");
  if (printButton) { printButton.addEventListener("click", function () { window.print(); }); }
  setupKeypad();
  if (!live) { return; }
  var view = live.getAttribute("data-view") || "status";
  var pollTimer = null;
  var failures = 0;

  function lost(isLost) {
    if (banner) { banner.hidden = !isLost; }
    document.body.classList.toggle("conn-lost", isLost);
  }
  function show(html) {
    if (html !== live.innerHTML) { live.innerHTML = html; }
    var source = live.querySelector("[data-poll-source]");
    var badge = document.getElementById("poll-badge");
    if (source && badge && badge.innerHTML !== source.innerHTML) {
      badge.className = source.className;
      badge.innerHTML = source.innerHTML;
    }
    lost(false);
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
  if (!window.EventSource) { startPolling(); return; }
  var source = new EventSource("/events?view=" + encodeURIComponent(view));
  source.addEventListener("live", function (event) { failures = 0; show(event.data); });
  source.addEventListener("open", function () { failures = 0; lost(false); });
  source.addEventListener("error", function () {
    // The stream ends every minute by design and the browser reconnects; only a failed reconnect is "lost".
    failures += 1;
    if (failures > 1 || source.readyState === EventSource.CLOSED) { lost(true); }
    if (source.readyState === EventSource.CLOSED) { startPolling(); }
  });

  function setupKeypad() {
    var pad = document.querySelector(".keypad");
    var input = document.getElementById("pin");
    if (!pad || !input) { return; }
    pad.hidden = false;
    pad.addEventListener("click", function (event) {
      var key = event.target.getAttribute("data-key");
      if (key === null) { return; }
      input.value = key === "back" ? input.value.slice(0, -1) : (input.value + key).slice(0, 12);
    });
  }
}());
