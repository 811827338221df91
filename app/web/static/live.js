// The pages' live part: alert changes and heartbeats from /stream, and actions without a page reload.
(function () {
  "use strict";
  var words = JSON.parse(document.getElementById("words").textContent);
  var icons = {blue: "●", yellow: "◆", orange: "▲", red: "⬢"};
  var order = {red: 0, orange: 1, yellow: 2, blue: 3};
  var list = document.getElementById("alerts");
  var wall = document.body.classList.contains("wall");
  var single = list && list.classList.contains("single");
  var banner = document.getElementById("banner");
  var last = list ? list.getAttribute("data-last") : "0";
  var lastBeat = Date.now();
  var sound = document.getElementById("sound");
  var stripHtml = null;
  // Times as people of the site read them: in its time zone, as the server renders them.
  var clock = new Intl.DateTimeFormat("en-GB", {timeZone: document.body.getAttribute("data-zone") || undefined,
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false});
  function hms(iso) { return iso ? clock.format(new Date(Date.parse(iso))) : ""; }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function levelSpan(lv) {
    var s = el("span", "level lv-" + lv);
    s.appendChild(el("span", "icon", icons[lv] || "")).setAttribute("aria-hidden", "true");
    s.appendChild(document.createTextNode(" " + words["level_" + lv]));
    return s;
  }
  function render(a) {
    var li = el("li", "alert lv-" + a.level + " st-" + a.status);
    li.setAttribute("data-alert-id", a.id);
    li.setAttribute("data-level", a.level);
    li.setAttribute("data-status", a.status);
    li.setAttribute("data-started", a.started_at || "");
    var head = el("div", "head");
    head.appendChild(levelSpan(a.level));
    head.appendChild(document.createTextNode(" "));
    head.appendChild(el("span", "status st-" + a.status, words["status_" + a.status]));
    li.appendChild(head);
    var what = el("a", "what", a.summary || a.rule);
    what.href = "/alert/" + encodeURIComponent(a.id);
    li.appendChild(what);
    li.appendChild(el("div", "where", a.place || [a.community, a.building].join(" › ")));
    var when = el("div", "when", words.since + " ");
    var t = el("time", "age", hms(a.started_at));
    t.setAttribute("datetime", a.started_at || "");
    when.appendChild(t);
    li.appendChild(when);
    if (a.level === "red" && a.status === "firing") li.setAttribute("role", "alert");
    if (document.body.classList.contains("inbox") && words.blow && document.querySelector(".whistle-link")) {
      var blow = el("a", "button whistle-btn", "" + words.blow);  // 吹哨 on this alert
      blow.href = "/whistle/new?alert=" + encodeURIComponent(a.id);
      blow.setAttribute("data-action", "whistle");
      blow.setAttribute("data-alert-id", a.id);
      li.appendChild(blow);
    }
    return li;
  }
  function place(li) {
    // Most serious first, then newest.
    var lv = order[li.getAttribute("data-level")], st = li.getAttribute("data-started");
    var items = list.querySelectorAll("li.alert");
    for (var i = 0; i < items.length; i++) {
      var o = order[items[i].getAttribute("data-level")], ost = items[i].getAttribute("data-started");
      if (o > lv || (o === lv && ost < st)) { list.insertBefore(li, items[i]); return; }
    }
    list.appendChild(li);
  }
  function apply(change) {
    var a = change.alert;
    var old = list.querySelector('li.alert[data-alert-id="' + CSS.escape(a.id) + '"]');
    if (single) {
      if (!old) return;
      old.setAttribute("data-status", a.status);
      old.setAttribute("data-level", a.level);
      old.className = "alert lv-" + a.level + " st-" + a.status;
      old.querySelector(".status").textContent = words["status_" + a.status];
      return;
    }
    if (a.status === "resolved") {
      if (old) {
        var row = list.querySelector('li.actions-row[data-for="' + CSS.escape(a.id) + '"]');
        if (row) row.remove();
        old.remove();
      }
    } else {
      var li = render(a);
      var chip = old && old.querySelector(".knock-chip");  // 上门确认, kept until the next heartbeat says more
      if (chip) li.insertBefore(chip, li.querySelector(".when"));
      if (old) {
        if (!wall) { old.replaceWith(li); } else { old.remove(); place(li); }
      } else {
        place(li);
        if (a.level === "red" && sound && sound.checked) beep();
      }
    }
    counts();
  }
  function counts() {
    var items = list.querySelectorAll("li.alert");
    var unacked = 0, oldest = null, by = {red: 0, orange: 0, yellow: 0, blue: 0};
    for (var i = 0; i < items.length; i++) {
      var lv = items[i].getAttribute("data-level");
      by[lv] = (by[lv] || 0) + 1;
      if (items[i].getAttribute("data-status") === "firing") {
        unacked++;
        var st = items[i].getAttribute("data-started");
        if (st && (oldest === null || st < oldest)) oldest = st;
      }
    }
    var u = document.getElementById("unacked");
    if (u) u.textContent = unacked;
    var o = document.getElementById("oldest");
    if (o) o.textContent = oldest ? age(oldest) : "–";
    for (var k in by) {
      var c = document.querySelector('[data-count="' + k + '"]');
      if (c) c.textContent = by[k];
    }
    var none = document.getElementById("none");
    if (none) none.hidden = items.length > 0;
  }
  function knockChip(k) {
    var chip = el("div", "knock-chip" + (k.not_reached ? " kc-not" : (k.pending ? "" : " kc-done")));
    chip.setAttribute("data-reached", k.reached);
    chip.setAttribute("data-total", k.total);
    var text = words.knock_chip.replace("{n}", k.reached).replace("{total}", k.total);
    chip.textContent = (k.pending || k.not_reached ? "" : "✓ ") + text;
    if (k.not_reached) {
      chip.appendChild(document.createTextNode(" · "));
      chip.appendChild(el("b", "", words.knock_chip_not.replace("{n}", k.not_reached)));
    }
    return chip;
  }
  function knocks(map) {
    // 上门确认 on the cards of red alerts with door knocks: the counts the heartbeat brings (never who).
    if (!list || single || !map) return;
    var items = list.querySelectorAll("li.alert");
    for (var i = 0; i < items.length; i++) {
      var k = map[items[i].getAttribute("data-alert-id")], old = items[i].querySelector(".knock-chip");
      if (!k) { if (old) old.remove(); continue; }
      var chip = knockChip(k);
      if (!old) items[i].insertBefore(chip, items[i].querySelector(".when"));
      else if (old.textContent !== chip.textContent || old.className !== chip.className) old.replaceWith(chip);
    }
  }
  function age(iso) {
    var s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (s < 60) return s + words.sec;
    if (s < 3600) return Math.floor(s / 60) + words.min;
    return Math.floor(s / 3600) + words.hour + Math.floor((s % 3600) / 60) + words.min;
  }
  var audio = null;
  function beep() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      var osc = audio.createOscillator();
      osc.frequency.value = 880;
      osc.connect(audio.destination);
      osc.start();
      osc.stop(audio.currentTime + 0.4);
    } catch (e) { /* no sound device */ }
  }
  function connect() {
    var strip = document.getElementById("cluster-strip") ? "&strip=1" : "";
    var source = new EventSource("/stream?after=" + encodeURIComponent(last) + strip);
    source.addEventListener("alert", function (e) {
      last = e.lastEventId || last;
      if (list) apply(JSON.parse(e.data));
    });
    source.addEventListener("heartbeat", function (e) {
      lastBeat = Date.now();
      banner.hidden = true;
      var d = JSON.parse(e.data);
      var u = document.getElementById("updated");
      u.textContent = hms(d.now);
      u.setAttribute("datetime", d.now);
      for (var key in d.buildings) {
        var b = document.querySelector('[data-building="' + CSS.escape(key) + '"]');
        if (!b) continue;
        b.querySelector(".on").textContent = d.buildings[key][0] + " " + words.online;
        b.querySelector(".off").textContent = d.buildings[key][1] + " " + words.offline;
        b.classList.toggle("has-offline", d.buildings[key][1] > 0);
        var unknown = b.querySelector(".unknown");
        if (unknown) {
          unknown.textContent = d.buildings[key][2] + " " + words.unknown;
          unknown.hidden = !d.buildings[key][2];
        }
      }
    });
    source.addEventListener("heartbeat", function (e) { knocks(JSON.parse(e.data).knocks); });
    source.addEventListener("heartbeat", function (e) {
      // 待登记设备: the wall's small link to the devices heard from that nobody registered.
      var link = document.getElementById("unreg-link"), n = JSON.parse(e.data).unregistered;
      if (!link || typeof n !== "number") return;
      link.textContent = (n === 1 ? words.unreg_one : words.unreg_n.replace("{n}", n)) + " ›";
      link.hidden = n === 0;
    });
    source.addEventListener("heartbeat", function (e) {
      // 集群: the wall's cluster strip, as the service rendered it in the viewer's language.
      var html = JSON.parse(e.data).cluster, strip = document.getElementById("cluster-strip");
      if (!strip || typeof html !== "string" || html === stripHtml) return;
      stripHtml = html;
      var box = document.createElement("div");
      box.innerHTML = html;
      var fresh = box.querySelector("#cluster-strip");
      if (fresh) strip.replaceWith(fresh);
    });
    source.addEventListener("reload", function () { location.reload(); });
    source.onerror = function () {
      banner.hidden = false;
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. the service answered an error): start afresh from what we have.
        setTimeout(connect, 2000);
      }
    };
    return source;
  }
  setInterval(function () {
    if (Date.now() - lastBeat > 12000) banner.hidden = false;  // the heartbeat (every 5 s) stopped
    if (list) counts();
  }, 1000);
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form.classList.contains("act")) return;
    e.preventDefault();
    var err = form.parentNode.querySelector(".act-error");
    var body = new URLSearchParams(new FormData(form));
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    fetch(form.action, {method: "POST", body: body, credentials: "same-origin",
                        headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json().then(function (j) { return [r.status, j]; }); })
      .then(function (res) {
        buttons.forEach(function (b) { b.disabled = false; });
        if (res[0] >= 300) {
          if (err) { err.textContent = res[1].detail; err.hidden = false; }
          return;
        }
        if (err) err.hidden = true;
        if (list && !single) {
          var known = list.querySelector('li.alert[data-alert-id="' + CSS.escape(res[1].id) + '"] .where');
          res[1].place = known ? known.textContent : "";
          apply({alert: res[1]});
        }
        if (single) location.reload();
      })
      .catch(function () {
        // A poor network: the same idempotency key is sent again, so a retry cannot act twice.
        buttons.forEach(function (b) { b.disabled = false; });
        if (err) { err.textContent = words.disconnected; err.hidden = false; }
      });
  });
  if (list) counts();
  connect();
})();
