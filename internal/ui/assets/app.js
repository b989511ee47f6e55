// vrelay event viewer: plain JavaScript, no libraries. Every request goes to
// this origin, so a browser's basic authentication covers the whole page.
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_ROWS = 500;
const COLORS = ["#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f", "#ad1457", "#4e342e", "#283593", "#558b2f"];
const OUTCOME_COLORS = { delivered: "#2e7d32", retry: "#ef8f00", dead_lettered: "#c62828" };

const state = {
  es: null,          // the EventSource
  paused: false,
  lastSeq: 0,        // last stream sequence shown, to resume after a pause
  shown: 0,
  filter: "",
  sources: new Set(),
  colors: {},        // source key -> colour
};

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (k === "class") e.className = v;
      else if (k === "dataset") Object.assign(e.dataset, v);
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e[k] = v;
    }
  }
  for (const c of children) {
    if (c != null) e.append(c);
  }
  return e;
}

// api returns the URL of an API path. It is built from the origin, which
// never holds credentials: a page opened as http://user:pw@host/ui/ would
// resolve a relative URL with them, and fetch refuses such URLs. The
// browser's cached basic authentication still goes along.
function api(path) {
  return location.origin + location.pathname.replace(/[^/]*$/, "") + "api/" + path;
}

async function getJSON(url, opts) {
  const r = await fetch(api(url), Object.assign({ cache: "no-store", credentials: "same-origin" }, opts));
  let body = null;
  try { body = await r.json(); } catch (_) { /* not JSON */ }
  return { ok: r.ok, status: r.status, body };
}

function colorOf(key) {
  if (!state.colors[key]) {
    state.colors[key] = COLORS[Object.keys(state.colors).length % COLORS.length];
  }
  return state.colors[key];
}

function setStatus(text, cls) {
  const s = $("status");
  s.textContent = text;
  s.className = "status " + (cls || "");
}

// ---- events ---------------------------------------------------------------

function streamURL(after) {
  const q = new URLSearchParams();
  if (state.filter) q.set("filter", state.filter);
  if (state.sources.size) q.set("sources", [...state.sources].join(","));
  if (after) q.set("after", String(after));
  else q.set("last", $("last").value);
  return api("events?" + q.toString());
}

function closeStream() {
  if (state.es) { state.es.close(); state.es = null; }
}

function openStream(after) {
  closeStream();
  const es = new EventSource(streamURL(after));
  state.es = es;
  setStatus("connecting…");
  es.addEventListener("open", () => setStatus(state.paused ? "paused" : "live", "live"));
  es.addEventListener("error", () => {
    // The browser reconnects by itself, with Last-Event-ID.
    if (es.readyState === EventSource.CLOSED) setStatus("disconnected", "down");
    else setStatus("reconnecting…", "down");
  });
  es.addEventListener("event", (m) => addEvent(JSON.parse(m.data)));
  es.addEventListener("ready", () => updateCount());
  es.addEventListener("filter_error", (m) => {
    const e = JSON.parse(m.data);
    $("count").textContent = "filter failed on an event (counted as no match): " + e.error;
  });
  es.addEventListener("stream_error", (m) => setStatus("stream error: " + JSON.parse(m.data).error, "down"));
}

function restart() {
  $("events").replaceChildren();
  state.shown = 0;
  state.lastSeq = 0;
  updateCount();
  if (!state.paused) openStream(0);
}

function fmtTime(s) {
  if (!s) return "";
  const d = new Date(s);
  if (isNaN(d)) return s;
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function fmtDate(s) {
  const d = new Date(s);
  if (isNaN(d)) return s || "";
  const p = (n) => String(n).padStart(2, "0");
  return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " + p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
}

function addEvent(ev) {
  state.lastSeq = Math.max(state.lastSeq, ev.seq);
  state.shown++;
  const ce = ev.event || {};
  const key = ev.provider + "." + ev.source;
  const swatch = el("span", { class: "swatch" });
  swatch.style.background = colorOf(key);
  const row = el("div", { class: "row", title: ev.subject },
    el("span", { class: "t" }, fmtTime(ce.time || ev.stored)),
    el("span", { class: "src" }, swatch, " ", key),
    el("span", { class: "type" }, (ce.subject ? ce.subject + " · " : "") + (ce.type || ev.subject)),
    el("span", { class: "id" }, "#" + ev.seq + " " + (ce.id || "")));
  const li = el("li", { class: "ev", dataset: { seq: ev.seq } }, row);
  row.addEventListener("click", () => {
    const pre = li.querySelector("pre");
    if (pre) { pre.remove(); return; }
    li.append(el("pre", { class: "json" }, ev.event ? JSON.stringify(ev.event, null, 2) : ev.raw));
  });
  const list = $("events");
  list.prepend(li);
  while (list.childElementCount > MAX_ROWS) list.lastElementChild.remove();
  updateCount();
}

function updateCount() {
  const n = $("events").childElementCount;
  $("count").textContent = n + " events shown" + (state.shown > n ? " (latest " + MAX_ROWS + " of " + state.shown + ")" : "") +
    (state.paused ? " · paused" : "");
}

async function applyFilter(ev) {
  if (ev) ev.preventDefault();
  const src = $("filter").value;
  // An EventSource cannot read an error body: check the filter first.
  const r = await getJSON("filter?filter=" + encodeURIComponent(src));
  const box = $("filter-error");
  if (!r.ok) {
    const e = r.body || { error: "HTTP " + r.status };
    $("filter-error-text").textContent = e.line ? "line " + e.line + ", column " + e.column + ": " + e.message : e.error;
    $("filter-error-snippet").textContent = (e.snippet || "").replace(/^\n/, "");
    box.hidden = false;
    $("filter").classList.add("bad");
    return;
  }
  box.hidden = true;
  $("filter").classList.remove("bad");
  state.filter = src.trim();
  restart();
}

function togglePause() {
  state.paused = !state.paused;
  $("pause").textContent = state.paused ? "Resume" : "Pause";
  if (state.paused) {
    closeStream();
    setStatus("paused");
  } else {
    // Go on right after the last event shown: nothing stored meanwhile is missed.
    openStream(state.lastSeq);
  }
  updateCount();
}

// ---- sources ----------------------------------------------------------------

async function loadSources() {
  const r = await getJSON("sources");
  if (!r.ok) return;
  const ul = $("sources");
  const items = r.body.map((s) => {
    const key = s.provider + "." + s.source;
    const box = el("input", { type: "checkbox", value: key, checked: state.sources.has(key) });
    box.addEventListener("change", () => {
      if (box.checked) state.sources.add(key); else state.sources.delete(key);
      restart();
    });
    const sw = el("span", { class: "swatch" });
    sw.style.background = colorOf(key);
    return el("li", null, el("label", null, box, " ", sw, " ", s.provider + " / " + s.source), el("span", { class: "n" }, String(s.events)));
  });
  if (!items.length) items.push(el("li", { class: "hint" }, "no events stored yet"));
  ul.replaceChildren(...items);
}

// ---- routes -------------------------------------------------------------------

let chartSamples = [];

async function loadRoutes() {
  const r = await getJSON("routes");
  if (!r.ok) return;
  const tb = $("routes").querySelector("tbody");
  const rows = r.body.map((rt) => {
    const c = rt.counts || {};
    const counted = Object.keys(c).length > 0; // absent: no route in this process
    const num = (v) => el("td", { class: "num" }, v == null ? "–" : String(Math.round(v)));
    const dl = el("a", { href: "#", onclick: (e) => { e.preventDefault(); showDLQ(rt.name); } }, String(rt.deadLetters));
    const spark = el("canvas", { width: 90, height: 22 });
    drawSpark(spark, rt.name);
    return el("tr", { dataset: { route: rt.name }, title: (rt.subjects || []).join(" ") + (rt.filter ? "\nfilter: " + rt.filter : "") + (rt.error ? "\n" + rt.error : "") },
      el("td", null, rt.name), num(rt.pending), num(c.delivered ?? (counted ? 0 : null)),
      num(c.retry ?? (counted ? 0 : null)), num(c.dead_lettered ?? (counted ? 0 : null)),
      el("td", { class: "num dlq-count" }, dl), el("td", null, spark));
  });
  tb.replaceChildren(...rows);
  const sel = $("dlq-route");
  const cur = sel.value;
  sel.replaceChildren(el("option", { value: "" }, "all routes"), ...r.body.map((rt) => el("option", { value: rt.name }, rt.name)));
  sel.value = cur;
}

// ---- charts (canvas, no library) -----------------------------------------------

function drawLines(canvas, series, opts) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
  canvas.width = w * dpr; canvas.height = h * dpr;
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  const n = chartSamples.length;
  let top = 0;
  for (const s of series) for (const v of s.values) top = Math.max(top, v);
  top = top > 0 ? top * 1.15 : 1;
  const pad = opts.axis ? 28 : 1;
  if (opts.axis) {
    g.fillStyle = "#68707a"; g.font = "10px sans-serif";
    g.fillText(top.toFixed(top < 10 ? 1 : 0), 0, 10);
    g.fillText("0", 0, h - 2);
    g.strokeStyle = "#dde1e6"; g.beginPath(); g.moveTo(pad, h - 1); g.lineTo(w, h - 1); g.stroke();
    if (n > 1) {
      const span = (new Date(chartSamples[n - 1].t) - new Date(chartSamples[0].t)) / 1000;
      g.fillText("last " + Math.round(span) + " s", w - 60, 10);
    }
  }
  if (n < 2) return;
  const x = (i) => pad + (i / (n - 1)) * (w - pad - 1);
  const y = (v) => h - 1 - (v / top) * (h - 4);
  for (const s of series) {
    g.strokeStyle = s.color; g.lineWidth = 1.5; g.beginPath();
    s.values.forEach((v, i) => (i ? g.lineTo(x(i), y(v)) : g.moveTo(x(i), y(v))));
    g.stroke();
  }
}

function drawSpark(canvas, route) {
  const series = Object.keys(OUTCOME_COLORS).map((o) => ({
    color: OUTCOME_COLORS[o],
    values: chartSamples.map((s) => ((s.routes || {})[route] || {})[o] || 0),
  }));
  drawLines(canvas, series, { axis: false });
}

async function loadChart() {
  const r = await getJSON("chart");
  if (!r.ok) return;
  chartSamples = r.body.samples || [];
  const keys = new Set();
  for (const s of chartSamples) for (const k of Object.keys(s.sources || {})) keys.add(k);
  const sorted = [...keys].sort();
  const series = sorted.map((k) => ({ color: colorOf(k), values: chartSamples.map((s) => (s.sources || {})[k] || 0) }));
  drawLines($("chart"), series, { axis: true });
  $("legend").replaceChildren(...sorted.map((k) => {
    const sw = el("span", { class: "swatch" });
    sw.style.background = colorOf(k);
    const last = chartSamples.length ? (chartSamples[chartSamples.length - 1].sources[k] || 0) : 0;
    return el("span", null, sw, " " + k + " " + last.toFixed(1) + "/s");
  }));
  for (const c of document.querySelectorAll("#routes tbody tr")) drawSpark(c.querySelector("canvas"), c.dataset.route);
}

// ---- dead letters ---------------------------------------------------------------

function showView(name) {
  $("view-events").hidden = name !== "events";
  $("view-dlq").hidden = name !== "dlq";
  $("tab-events").classList.toggle("active", name === "events");
  $("tab-dlq").classList.toggle("active", name === "dlq");
}

function showDLQ(route) {
  $("dlq-route").value = route || "";
  showView("dlq");
  loadDLQ();
}

function dlqMessage(text, ok) {
  const m = $("dlq-msg");
  m.textContent = text;
  m.className = "msg " + (ok ? "ok" : "bad");
}

async function loadDLQ() {
  const route = $("dlq-route").value;
  const r = await getJSON("dlq?limit=200" + (route ? "&route=" + encodeURIComponent(route) : ""));
  const tb = $("dlq").querySelector("tbody");
  if (!r.ok) { dlqMessage((r.body && r.body.error) || "HTTP " + r.status, false); return; }
  tb.replaceChildren(...r.body.letters.map((l) => {
    const show = el("button", { type: "button", class: "show" }, "Show");
    const replay = el("button", { type: "button", class: "replay", disabled: !l.replayable, title: l.problem || "send it back to route " + l.route }, "Replay");
    const tr = el("tr", { class: "letter", dataset: { seq: l.seq } },
      el("td", { class: "num" }, String(l.seq)), el("td", null, l.route || "?"), el("td", { title: l.failedAt }, fmtDate(l.failedAt)),
      el("td", null, l.failure), el("td", { class: "num" }, String(l.attempts)), el("td", null, l.eventType),
      el("td", { class: "reason", title: l.reason }, l.reason), el("td", null, show, " ", replay));
    show.addEventListener("click", () => toggleLetter(tr, l.seq));
    replay.addEventListener("click", () => replayLetter(l.seq, replay));
    return tr;
  }));
  $("dlq-total").textContent = r.body.total + " dead letters" + (r.body.total > r.body.letters.length ? " (showing " + r.body.letters.length + ")" : "");
}

async function toggleLetter(tr, seq) {
  const next = tr.nextElementSibling;
  if (next && next.classList.contains("letter-detail")) { next.remove(); return; }
  const r = await getJSON("dlq/" + seq);
  if (!r.ok) { dlqMessage((r.body && r.body.error) || "HTTP " + r.status, false); return; }
  const headers = Object.keys(r.body.headers || {}).sort().map((k) => k + ": " + r.body.headers[k].join(", ")).join("\n");
  const body = r.body.event ? JSON.stringify(r.body.event, null, 2) : r.body.raw;
  tr.after(el("tr", { class: "letter-detail" }, el("td", { colSpan: 8 }, el("pre", null, headers + "\n\n" + body))));
}

async function replayLetter(seq, button) {
  button.disabled = true;
  const r = await getJSON("dlq/" + seq + "/replay", { method: "POST" });
  if (!r.ok) {
    button.disabled = false;
    dlqMessage("replay of " + seq + " failed: " + ((r.body && r.body.error) || "HTTP " + r.status), false);
    return;
  }
  dlqMessage("replayed dead letter " + r.body.seq + " to route " + r.body.route + " (" + r.body.subject + " #" + r.body.replaySeq + ")", true);
  loadDLQ();
  loadRoutes();
}

// ---- start --------------------------------------------------------------------------

function every(ms, f) {
  f();
  setInterval(() => { if (!document.hidden) f(); }, ms);
}

$("filter-form").addEventListener("submit", applyFilter);
$("last").addEventListener("change", () => restart());
$("pause").addEventListener("click", togglePause);
$("tab-events").addEventListener("click", () => showView("events"));
$("tab-dlq").addEventListener("click", () => showDLQ($("dlq-route").value));
$("dlq-refresh").addEventListener("click", loadDLQ);
$("dlq-route").addEventListener("change", loadDLQ);
window.addEventListener("resize", loadChart);

restart();
every(10000, loadSources);
every(3000, loadRoutes);
every(2000, loadChart);
