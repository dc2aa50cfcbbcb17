/**
 * The live console page (`GET /console`): one self-contained HTML document, inline CSS and JS, no
 * build step, no CDN, no other origin (the server sends a CSP that allows nothing else). It reads
 * `/events?stats=1` with fetch (so the token travels as a bearer header, and the `key:` field of
 * each frame is readable, which EventSource would drop), and keeps its own Last-Event-ID.
 *
 * What it shows: changes newest first (time, table, action, key, a diff of dataOld → data), a table
 * filter and action checkboxes (sent to the server as ?tables= and ?actions=, and applied to the
 * rows already shown), pause/resume (changes arriving while paused wait, at most MAX_WAITING),
 * throughput and lag sparklines, and the connection, daemon and publisher state.
 * All text reaches the DOM through textContent: event values cannot inject markup.
 */
export const CONSOLE_PAGE = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wal-listener · live console</title>
<style>
  :root { --bg:#0f1419; --panel:#171e26; --line:#273240; --text:#d8dee6; --dim:#7d8a99; --ins:#3fb950; --del:#f85149; --upd:#d29922; --acc:#58a6ff; }
  * { box-sizing: border-box; }
  body { margin:0; font:13px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background:var(--bg); color:var(--text); }
  header { display:flex; flex-wrap:wrap; gap:14px; align-items:center; padding:10px 16px; background:var(--panel); border-bottom:1px solid var(--line); }
  header h1 { font-size:15px; margin:0; font-weight:600; }
  .badge { padding:2px 8px; border-radius:10px; border:1px solid var(--line); }
  .badge::before { content:"●"; margin-right:6px; }
  .st-live { color:var(--ins); } .st-paused { color:var(--upd); } .st-connecting, .st-reconnecting { color:var(--acc); }
  .st-unauthorized, .st-full, .st-down { color:var(--del); }
  .meta { color:var(--dim); }
  .charts { display:flex; flex-wrap:wrap; gap:16px; padding:10px 16px; }
  .spark { background:var(--panel); border:1px solid var(--line); border-radius:6px; padding:8px 10px; min-width:280px; flex:1; }
  .spark b { color:var(--text); font-size:15px; }
  .spark svg { display:block; width:100%; height:44px; margin-top:4px; }
  .spark polyline { fill:none; stroke:var(--acc); stroke-width:1.5; }
  .spark polygon { fill:rgba(88,166,255,.12); stroke:none; }
  form { display:flex; flex-wrap:wrap; gap:12px; align-items:center; padding:4px 16px 10px; }
  input[type=text] { background:var(--panel); color:var(--text); border:1px solid var(--line); border-radius:4px; padding:4px 8px; width:260px; font:inherit; }
  button { background:var(--panel); color:var(--text); border:1px solid var(--line); border-radius:4px; padding:4px 12px; font:inherit; cursor:pointer; }
  button:hover { border-color:var(--acc); }
  label.act { color:var(--dim); margin-right:6px; } label.act input { vertical-align:middle; margin:0 3px 0 0; }
  table { width:100%; border-collapse:collapse; }
  th { text-align:left; color:var(--dim); font-weight:normal; border-bottom:1px solid var(--line); padding:4px 8px; position:sticky; top:0; background:var(--bg); }
  td { border-bottom:1px solid var(--line); padding:4px 8px; vertical-align:top; }
  td.time { color:var(--dim); white-space:nowrap; }
  td.tbl { white-space:nowrap; }
  .a { font-weight:600; } .a-INSERT, .a-SNAPSHOT { color:var(--ins); } .a-DELETE, .a-TRUNCATE { color:var(--del); } .a-UPDATE { color:var(--upd); } .a-MESSAGE { color:var(--acc); }
  .col { display:inline-block; margin-right:12px; }
  .col .n { color:var(--dim); } .old { color:var(--del); text-decoration:line-through; } .new { color:var(--ins); } .same { color:var(--dim); }
  .null { font-style:italic; color:var(--dim); }
  tr.note td { color:var(--upd); font-style:italic; }
  .hidden { display:none; }
  #message { padding:0 16px; color:var(--del); }
</style>
</head>
<body>
<header>
  <h1>wal-listener · live console</h1>
  <span id="state" class="badge st-connecting">connecting</span>
  <span class="meta">daemon <span id="daemon">–</span></span>
  <span class="meta">publisher <span id="publisher">–</span></span>
  <span class="meta">viewers <span id="clients">–</span></span>
  <span class="meta">events <span id="total">–</span></span>
</header>
<div id="message"></div>
<section class="charts">
  <div class="spark"><span class="meta">throughput</span> <b id="rate">–</b> <span class="meta">events/s</span><svg id="spark-rate" viewBox="0 0 300 44" preserveAspectRatio="none"></svg></div>
  <div class="spark"><span class="meta">lag (commit → broker ack)</span> <b id="lag">–</b> <span class="meta">ms</span> <span class="meta" id="lagbytes"></span><svg id="spark-lag" viewBox="0 0 300 44" preserveAspectRatio="none"></svg></div>
</section>
<form id="filters" autocomplete="off">
  <span>tables <input type="text" id="tables" list="seen" placeholder="all (users, public.orders)"><datalist id="seen"></datalist></span>
  <span id="actions"></span>
  <button type="button" id="pause">Pause</button>
  <span id="waiting" class="meta"></span>
  <button type="button" id="clear">Clear</button>
</form>
<table id="changes">
  <thead><tr><th>commit time</th><th>table</th><th>action</th><th>key</th><th>change (dataOld → data)</th></tr></thead>
  <tbody></tbody>
</table>
<script>
"use strict";
(function () {
  var MAX_ROWS = 500, MAX_WAITING = 1000, HISTORY = 60;
  var ACTIONS = ["insert", "update", "delete", "truncate", "snapshot", "message"];
  var $ = function (id) { return document.getElementById(id); };
  var params = new URLSearchParams(location.search);
  var token = params.get("token") || sessionStorage.getItem("wal-listener-token") || "";
  if (params.has("token")) {
    // Keep the token out of the address bar and history once the page has it.
    sessionStorage.setItem("wal-listener-token", token);
    params.delete("token");
    history.replaceState(null, "", location.pathname + (params.toString() ? "?" + params : ""));
  }
  if (params.get("tables")) $("tables").value = params.get("tables");
  var chosen = params.get("actions") ? params.get("actions").toLowerCase().split(",") : ACTIONS;
  ACTIONS.forEach(function (a) {
    var label = document.createElement("label"); label.className = "act";
    var box = document.createElement("input"); box.type = "checkbox"; box.value = a; box.checked = chosen.indexOf(a) >= 0; box.id = "act-" + a;
    box.addEventListener("change", refilter);
    label.appendChild(box); label.appendChild(document.createTextNode(" " + a));
    $("actions").appendChild(label);
  });

  var body = document.querySelector("#changes tbody");
  var paused = false, waiting = [], lastId = "", controller = null, connection = "connecting", retryTimer = 0;
  var rates = [], lags = [], seen = {};

  function setState(s, text) {
    connection = s;
    var shown = s === "live" && paused ? "paused" : s;
    $("state").className = "badge st-" + shown;
    $("state").textContent = text || shown;
  }

  function filterOf() {
    var tables = $("tables").value.split(",").map(function (t) { return t.trim(); }).filter(Boolean);
    var actions = ACTIONS.filter(function (a) { return $("act-" + a).checked; });
    return { tables: tables, actions: actions };
  }

  function matches(f, schema, table, action) {
    if (f.actions.length < ACTIONS.length && f.actions.indexOf(action.toLowerCase()) < 0) return false;
    return f.tables.length === 0 || f.tables.indexOf(table) >= 0 || f.tables.indexOf(schema + "." + table) >= 0;
  }

  function refilter() {
    var f = filterOf();
    Array.prototype.forEach.call(body.querySelectorAll("tr.change"), function (tr) {
      tr.classList.toggle("hidden", !matches(f, tr.dataset.schema, tr.dataset.table, tr.dataset.action));
    });
    waiting = waiting.filter(function (e) { return matches(f, e.event.schema, e.event.table, e.event.action); });
    showWaiting();
    connect(false);
  }
  $("filters").addEventListener("submit", function (e) { e.preventDefault(); refilter(); });
  $("tables").addEventListener("change", refilter);

  $("pause").addEventListener("click", function () {
    paused = !paused;
    $("pause").textContent = paused ? "Resume" : "Pause";
    if (!paused) { var list = waiting; waiting = []; list.forEach(function (e) { addRow(e.event, e.key); }); }
    showWaiting();
    setState(connection, connection === "live" ? undefined : $("state").textContent);
  });
  $("clear").addEventListener("click", function () { body.textContent = ""; waiting = []; showWaiting(); });

  function showWaiting() { $("waiting").textContent = paused ? waiting.length + " waiting" : ""; }

  // ---- the stream: fetch + a Server-Sent Events parser (WHATWG rules for lines and fields) ----
  function connect(resume) {
    if (controller) controller.abort();
    clearTimeout(retryTimer);
    var c = controller = new AbortController();
    var f = filterOf(), q = new URLSearchParams({ stats: "1" });
    if (f.tables.length) q.set("tables", f.tables.join(","));
    if (f.actions.length < ACTIONS.length) q.set("actions", f.actions.join(",") || "none");
    if (f.actions.length === 0) { setState("live", "no action selected"); return; }
    var headers = {};
    if (token) headers.Authorization = "Bearer " + token;
    if (resume && lastId) headers["Last-Event-ID"] = lastId;
    setState(resume ? "reconnecting" : "connecting");
    fetch("/events?" + q, { headers: headers, signal: c.signal, cache: "no-store" }).then(function (res) {
      if (res.status === 401) { setState("unauthorized"); $("message").textContent = "Unauthorized: open this page as /console?token=<console.token>."; return; }
      if (res.status === 503) { setState("full", "too many viewers"); return retry(10000); }
      if (!res.ok || !res.body) { setState("down", "HTTP " + res.status); return retry(2000); }
      $("message").textContent = "";
      setState("live");
      return read(res.body.getReader(), c);
    }).catch(function () {}).then(function () {
      if (c === controller && !c.signal.aborted && connection !== "unauthorized" && connection !== "full") { setState("reconnecting"); retry(2000); }
    });
  }
  function retry(ms) { clearTimeout(retryTimer); retryTimer = setTimeout(function () { connect(true); }, ms); }

  function read(reader, c) {
    var decoder = new TextDecoder(), buffer = "", ev = { data: [], type: "", id: "", key: "" };
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done || c.signal.aborted) return;
        buffer += decoder.decode(chunk.value, { stream: true });
        var lines = buffer.split(/\r\n|\r|\n/);
        buffer = lines.pop();
        for (var i = 0; i < lines.length; i++) {
          var line = lines[i];
          if (line === "") { if (ev.data.length) dispatch(ev); ev = { data: [], type: "", id: "", key: "" }; continue; }
          if (line[0] === ":") continue;
          var at = line.indexOf(":"), field = at < 0 ? line : line.slice(0, at), value = at < 0 ? "" : line.slice(at + 1);
          if (value[0] === " ") value = value.slice(1);
          if (field === "data") ev.data.push(value);
          else if (field === "event") ev.type = value;
          else if (field === "id") ev.id = value;
          else if (field === "key") ev.key = value;
        }
        return pump();
      });
    }
    return pump();
  }

  function dispatch(ev) {
    var data;
    try { data = JSON.parse(ev.data.join("\n")); } catch (e) { return; }
    if (ev.type === "stats") return stats(data);
    if (ev.type === "gap") return note("Reconnected after event " + data.lastEventId + ": " + data.message + ".");
    if (ev.id) lastId = ev.id;
    if (paused) { waiting.push({ event: data, key: ev.key }); if (waiting.length > MAX_WAITING) waiting.shift(); showWaiting(); return; }
    addRow(data, ev.key);
  }

  // ---- rows ----
  function el(tag, cls, text) { var e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }
  function show(v) { if (v === null) return "null"; var s = typeof v === "string" ? v : JSON.stringify(v); return s.length > 120 ? s.slice(0, 117) + "…" : s; }
  function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }
  function col(name) { var span = el("span", "col"); span.appendChild(el("span", "n", name + " ")); return span; }
  function value(cls, v) { var s = el("span", v === null ? cls + " null" : cls, show(v)); s.title = typeof v === "string" ? v : JSON.stringify(v); return s; }

  function diff(e) {
    var cell = el("td"), data = e.data || {}, old = e.dataOld || {}, toast = e.unchangedToast || [];
    if (e.action === "TRUNCATE") { cell.textContent = "table truncated"; return cell; }
    if (e.action === "MESSAGE") { cell.appendChild(value("new", e.payload)); return cell; }
    if (e.action === "DELETE") { Object.keys(old).forEach(function (k) { var c = col(k); c.appendChild(value("old", old[k])); cell.appendChild(c); }); return cell; }
    var hasOld = Object.keys(old).length > 0;
    Object.keys(data).forEach(function (k) {
      var c = col(k);
      if (e.action !== "UPDATE") c.appendChild(value("new", data[k]));
      else if (k in old && !same(old[k], data[k])) { c.appendChild(value("old", old[k])); c.appendChild(el("span", "n", " → ")); c.appendChild(value("new", data[k])); }
      else c.appendChild(value(hasOld && k in old ? "same" : "new", data[k]));
      cell.appendChild(c);
    });
    toast.forEach(function (k) { var c = col(k); c.appendChild(el("span", "same", "(unchanged TOAST)")); cell.appendChild(c); });
    return cell;
  }

  function keyText(key) {
    try { var k = JSON.parse(key); if (k && typeof k === "object") return Object.keys(k).map(function (n) { return n + "=" + show(k[n]); }).join(" "); } catch (e) { /* not JSON */ }
    return key;
  }

  function addRow(e, key) {
    var tr = el("tr", "change");
    tr.dataset.schema = e.schema || ""; tr.dataset.table = e.table || ""; tr.dataset.action = e.action || ""; tr.dataset.id = e.id || "";
    var t = e.commitTime ? new Date(e.commitTime) : null;
    tr.appendChild(el("td", "time", t && !isNaN(t) ? t.toLocaleTimeString([], { hour12: false }) + "." + String(t.getMilliseconds()).padStart(3, "0") : ""));
    tr.appendChild(el("td", "tbl", (e.schema ? e.schema + "." : "") + e.table));
    tr.appendChild(el("td", "a a-" + e.action, e.action));
    tr.appendChild(el("td", "key", keyText(key)));
    tr.appendChild(diff(e));
    if (!matches(filterOf(), tr.dataset.schema, tr.dataset.table, tr.dataset.action)) tr.classList.add("hidden");
    body.insertBefore(tr, body.firstChild);
    while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
    var name = e.schema + "." + e.table;
    if (!seen[name]) { seen[name] = true; var o = document.createElement("option"); o.value = name; $("seen").appendChild(o); }
  }

  function note(text) {
    var tr = el("tr", "note"), td = el("td", "", text); td.colSpan = 5; tr.appendChild(td);
    body.insertBefore(tr, body.firstChild);
  }

  // ---- stats and sparklines ----
  function stats(s) {
    rates.push(s.rate); lags.push(s.latencyMs === null ? 0 : s.latencyMs);
    if (rates.length > HISTORY) { rates.shift(); lags.shift(); }
    $("rate").textContent = s.rate;
    $("lag").textContent = s.latencyMs === null ? "–" : s.latencyMs;
    $("lagbytes").textContent = s.lagBytes === null ? "" : "· source lag " + bytes(s.lagBytes);
    $("total").textContent = s.total;
    $("clients").textContent = s.clients;
    $("daemon").textContent = s.state;
    $("publisher").textContent = s.publisher.reason.replace(/^publisher /, "");
    $("publisher").className = s.publisher.ok ? "st-live" : "st-down";
    spark($("spark-rate"), rates); spark($("spark-lag"), lags);
  }

  function bytes(n) { return n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(1) + " KiB" : (n / 1048576).toFixed(1) + " MiB"; }

  function spark(svg, values) {
    var max = Math.max.apply(null, values.concat([1])), n = HISTORY - 1, pts = [];
    var offset = HISTORY - values.length;
    values.forEach(function (v, i) { pts.push(((offset + i) * 300 / n).toFixed(1) + "," + (42 - (v / max) * 40).toFixed(1)); });
    svg.textContent = "";
    if (!pts.length) return;
    var ns = "http://www.w3.org/2000/svg";
    var area = document.createElementNS(ns, "polygon");
    area.setAttribute("points", (offset * 300 / n).toFixed(1) + ",44 " + pts.join(" ") + " 300,44");
    var line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts.join(" "));
    svg.appendChild(area); svg.appendChild(line);
  }

  connect(false);
})();
</script>
</body>
</html>
`;
