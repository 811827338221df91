// 待登记设备: copy a `devices:` line (the clipboard, else the line selected for the person to copy), and
// the list fetched again every few seconds (an open sample stays open, a selection is never lost).
(function () {
  "use strict";
  var section = document.getElementById("unreg");
  var banner = document.getElementById("banner");
  var every = (parseInt(section.getAttribute("data-refresh-s"), 10) || 15) * 1000;
  var busyUntil = 0;

  function select(box) {
    var range = document.createRange();
    range.selectNodeContents(box);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }
  function told(button, text) {
    var was = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", was);
    button.textContent = text;
    button.classList.add("done");
    busyUntil = Date.now() + 4000;
    setTimeout(function () { button.textContent = was; button.classList.remove("done"); }, 2500);
  }
  function fallback(button, box) {
    // Over plain http (not a secure context) there is no navigator.clipboard: select the line, try the
    // old copy command, and say so when the person has to copy it themselves.
    select(box);
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    if (ok) { told(button, section.getAttribute("data-copied")); }
    else { told(button, section.getAttribute("data-selected")); busyUntil = Date.now() + 30000; }
  }
  document.addEventListener("click", function (e) {
    var button = e.target.closest("button[data-action=copy]");
    if (!button) return;
    var box = button.parentNode.querySelector(".devline code");
    var text = box.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () {
        told(button, section.getAttribute("data-copied"));
      }, function () { fallback(button, box); });
    } else {
      fallback(button, box);
    }
  });

  function selecting() {
    var sel = window.getSelection();
    return sel && !sel.isCollapsed && section.contains(sel.anchorNode);
  }
  function refresh() {
    if (Date.now() < busyUntil || selecting() || document.hidden) return;
    fetch(location.pathname, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (r) {
        if (r.redirected || r.status === 401 || r.status === 403) { location.reload(); return null; }
        return r.ok ? r.text() : Promise.reject(r.status);
      })
      .then(function (html) {
        if (html === null || Date.now() < busyUntil || selecting()) return;
        banner.hidden = true;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("unreg");
        if (!fresh) return;
        var open = {};
        section.querySelectorAll("li.unreg").forEach(function (li) {
          var d = li.querySelector("details");
          if (d && d.open) open[li.getAttribute("data-key")] = true;
        });
        fresh.querySelectorAll("li.unreg").forEach(function (li) {
          var d = li.querySelector("details");
          if (d && open[li.getAttribute("data-key")]) d.open = true;
        });
        section.innerHTML = fresh.innerHTML;
        var now = doc.getElementById("updated");
        if (now) updated(now.getAttribute("datetime"));
      })
      .catch(function () { banner.hidden = false; });
  }
  function updated(iso) {
    // When the list was made, in the browser's time (as the other pages' heartbeat shows it).
    var u = document.getElementById("updated");
    if (!u || !iso) return;
    u.setAttribute("datetime", iso);
    u.textContent = new Date(Date.parse(iso)).toTimeString().slice(0, 8);
  }
  var shown = document.getElementById("updated");
  if (shown) updated(shown.getAttribute("datetime"));
  setInterval(refresh, every);
})();
