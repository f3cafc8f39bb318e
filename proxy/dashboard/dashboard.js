// The dashboard polls GET /api/stats once a second and redraws. Every text
// that comes from the server goes in through textContent or an attribute,
// never as HTML.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const WINDOW_MS = 60000; // the most the balancer keeps
const MIN_WINDOW_MS = 20000;
const PALETTE = ["#60a5fa", "#34d399", "#f472b6", "#fbbf24", "#a78bfa", "#22d3ee", "#fb923c", "#f87171", "#4ade80", "#c084fc"];

const AVG_SAMPLES = 5; // the big numbers are the mean of the last 5 one-second samples

const colors = new Map(); // address -> colour, stable while the page lives
const cards = new Map(); // address -> card elements
let lastOK = 0;
let windowMS = MIN_WINDOW_MS; // what the graphs span: the history there is, 20 to 60 s
// The last /api/stats answer drawn, for the browser test to check the page's
// sums against.
let lastStats = null;

function colorOf(addr) {
  if (!colors.has(addr)) colors.set(addr, PALETTE[colors.size % PALETTE.length]);
  return colors.get(addr);
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function fmtRate(v) {
  if (v == null) return "–";
  if (v >= 10000) return (v / 1000).toFixed(1) + "k";
  if (v >= 100) return Math.round(v).toLocaleString("en-US");
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(v === 0 ? 0 : 2);
}
function fmtMs(v) {
  if (v == null) return "–";
  if (v >= 1000) return (v / 1000).toFixed(2) + " s";
  if (v >= 100) return Math.round(v).toString();
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}
function fmtPct(v) {
  if (v == null) return "–";
  const p = v * 100;
  if (p === 0) return "0%";
  if (p < 0.1) return "<0.1%";
  return (p < 10 ? p.toFixed(1) : Math.round(p)) + "%";
}
function fmtCount(n) { return Number(n).toLocaleString("en-US"); }
function fmtAgo(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  return Math.floor(s / 3600) + " h ago";
}
function fmtUptime(ms) {
  const s = Math.floor(ms / 1000), d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  if (d) return d + "d " + h + "h";
  if (h) return h + "h " + m + "m";
  if (m) return m + "m " + (s % 60) + "s";
  return (s % 60) + "s";
}
function fmtClock(t) {
  const d = new Date(t);
  return d.toLocaleTimeString("en-GB", { hour12: false });
}

// avg5 is what the big numbers show: over the last AVG_SAMPLES seconds of a
// series (the end of its sparkline), the mean rate, the error share of all
// requests in them, and the mean latency of the seconds that had responses.
// A series with no sample yet gives nulls, shown as "–".
function avg5(samples) {
  const w = samples.slice(-AVG_SAMPLES);
  const out = { rps: null, error_rate: null, p50_ms: null, p99_ms: null, from: null, to: null };
  if (!w.length) return out;
  out.from = w[0].t - 1000; // a sample counts the second before its time
  out.to = w[w.length - 1].t;
  let rps = 0, errs = 0;
  for (const s of w) { rps += s.rps; errs += s.rps * s.error_rate; }
  out.rps = rps / w.length;
  out.error_rate = rps > 0 ? errs / rps : 0;
  for (const k of ["p50_ms", "p99_ms"]) {
    const v = w.filter(s => s[k] != null).map(s => s[k]);
    if (v.length) out[k] = v.reduce((a, b) => a + b, 0) / v.length;
  }
  return out;
}

// niceStep is the grid step for values up to max: 1, 2 or 5 times a power
// of ten, giving about `lines` grid lines.
function niceStep(max, lines) {
  const raw = max / lines;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}
// fmtTick prints a multiple of a nice step without float noise (0.30000000000000004).
function fmtTick(v) {
  if (v >= 1000) return Number((v / 1000).toPrecision(6)) + "k";
  return String(Number(v.toPrecision(6)));
}

// Draws values over the last minute into an SVG that scales with its box:
// the viewBox is 600 wide, time runs left to right ending at now.
function drawSeries(node, now, layers, opts) {
  const W = 600, H = opts.height;
  node.setAttribute("viewBox", `0 0 ${W} ${H}`);
  node.replaceChildren();
  const x = t => ((t - (now - windowMS)) / windowMS) * W;
  let max = opts.min || 0;
  for (const l of layers) for (const p of l.points) if (p.v != null && p.top > max) max = p.top;
  if (opts.grid) {
    // The top of the scale is a grid line, a whole number of round steps
    // with some room above the highest value.
    const step = niceStep(max * 1.08 || 1, 4);
    max = Math.ceil((max * 1.08 || 1) / step) * step;
    const n = Math.round(max / step), labels = [];
    for (let i = n; i >= 1; i--) { // top first: it carries the unit
      const v = step * i, gy = H - (i / n) * H;
      node.append(svg("line", { x1: 0, x2: W, y1: gy, y2: gy, stroke: "rgba(255,255,255,.07)", "stroke-width": 1, "vector-effect": "non-scaling-stroke" }));
      const l = el("span", "", fmtTick(v) + (i === n ? " req/s" : ""));
      l.dataset.value = fmtTick(v);
      l.style.top = ((1 - i / n) * 100) + "%";
      labels.push(l);
    }
    opts.grid.replaceChildren(...labels);
  } else {
    max = max * 1.15 || 1;
  }
  const y = v => H - (v / max) * (H - opts.pad);
  if (opts.window && opts.window.from != null) {
    // The seconds the big number averages, behind the line that ends here.
    const x0 = Math.max(0, x(opts.window.from)), x1 = Math.min(W, x(opts.window.to));
    if (x1 > x0) node.append(svg("rect", { x: x0, y: 0, width: x1 - x0, height: H, fill: "rgba(255,255,255,.035)" }));
  }
  for (const l of layers) {
    const pts = l.points.filter(p => p.v != null && p.t >= now - windowMS - 1000);
    if (pts.length < 2) continue;
    if (l.fill) {
      let d = `M${x(pts[0].t)},${y(pts[0].base || 0)}`;
      for (const p of pts) d += `L${x(p.t)},${y(p.top)}`;
      for (let i = pts.length - 1; i >= 0; i--) d += `L${x(pts[i].t)},${y(pts[i].base || 0)}`;
      node.append(svg("path", { d: d + "Z", fill: l.color, "fill-opacity": l.fillOpacity || 0.22 }));
    }
    let d = "";
    pts.forEach((p, i) => { d += (i ? "L" : "M") + x(p.t) + "," + y(p.top); });
    node.append(svg("path", { d, fill: "none", stroke: l.color, "stroke-width": l.width || 1.6, "stroke-linejoin": "round", "vector-effect": "non-scaling-stroke", "stroke-dasharray": l.dash || "" }));
  }
}

function spark(node, now, samples, key, color, window) {
  const points = samples.map(s => ({ t: s.t, v: s[key], top: s[key] }));
  drawSeries(node, now, [{ points, color, fill: true, fillOpacity: 0.18 }], { height: 46, pad: 6, window });
}

// setNum shows v through fmt and keeps the unrounded value beside it.
function setNum(node, v, fmt) {
  node.textContent = fmt(v);
  node.dataset.value = v == null ? "" : String(v);
}

function renderHeader(st) {
  const status = document.getElementById("status");
  status.dataset.status = st.status;
  status.textContent = st.status;
  document.getElementById("addrs").textContent = `public ${st.listen} · health ${st.health_listen}`;
  document.getElementById("meta").textContent = `pid ${st.pid} · up ${fmtUptime(st.now - st.started)}`;
}

function renderKPIs(st) {
  const t = st.total, a = avg5(t);
  setNum(document.getElementById("k-rps"), a.rps, fmtRate);
  setNum(document.getElementById("k-err"), a.error_rate, fmtPct);
  setNum(document.getElementById("k-p50"), a.p50_ms, fmtMs);
  setNum(document.getElementById("k-p99"), a.p99_ms, fmtMs);
  spark(document.getElementById("s-rps"), st.now, t, "rps", "#818cf8", a);
  spark(document.getElementById("s-err"), st.now, t, "error_rate", "#ef4444", a);
  spark(document.getElementById("s-p50"), st.now, t, "p50_ms", "#22d3ee", a);
  spark(document.getElementById("s-p99"), st.now, t, "p99_ms", "#f472b6", a);
  const active = st.backends.filter(b => b.state !== "draining");
  const up = active.filter(b => b.state === "healthy").length;
  document.getElementById("k-up").textContent = String(up);
  document.getElementById("k-up-of").textContent = `of ${active.length}` + (st.backends.length > active.length ? ` · ${st.backends.length - active.length} draining` : "");
  const pips = document.getElementById("pips");
  pips.replaceChildren(...st.backends.map(b => { const p = el("i", "pip"); p.dataset.state = b.state; p.title = `${b.name} (${b.address}): ${b.state}`; return p; }));
}

function renderChart(st) {
  // Stack the backends' rates at each second the balancer sampled.
  const times = st.total.map(s => s.t);
  const byBackend = st.backends.map(b => {
    const m = new Map(b.samples.map(s => [s.t, s.rps]));
    return { addr: b.address, m };
  });
  const base = new Map(times.map(t => [t, 0]));
  const layers = [];
  for (const b of byBackend) {
    const points = times.map(t => {
      const v = b.m.get(t);
      const lo = base.get(t);
      const hi = lo + (v || 0);
      base.set(t, hi);
      return { t, v: v == null ? 0 : v, base: lo, top: hi };
    });
    layers.push({ points, color: colorOf(b.addr), fill: true, fillOpacity: 0.28, width: 1.4 });
  }
  drawSeries(document.getElementById("chart"), st.now, layers, { height: 210, pad: 0, grid: document.getElementById("ylabels"), min: 1 });
  const legend = document.getElementById("legend");
  legend.replaceChildren(...st.backends.map(b => {
    const s = el("span");
    s.title = b.address;
    const i = el("i");
    i.style.background = colorOf(b.address);
    s.append(i, document.createTextNode(b.name));
    return s;
  }));
}

function newCard(addr) {
  const root = el("article", "card");
  root.dataset.backend = addr;
  const head = el("div", "card-head");
  const name = el("div", "addr");
  const sw = el("i", "sw");
  sw.style.background = colorOf(addr);
  // The name first, the address after it (once, for a backend that has no
  // name and so goes by its address).
  const nameText = el("span", "name", addr), addrText = el("span", "where", addr);
  name.append(sw, nameText, addrText);
  const badge = el("span", "badge");
  head.append(name, badge);
  const stats = el("div", "stats");
  const cell = label => { const c = el("div", "stat"); const v = el("b", "", "–"); c.append(el("small", "", label), v); stats.append(c); return v; };
  const v = { rps: cell("req/s"), err: cell("errors"), p50: cell("p50 ms"), p99: cell("p99 ms"), inflight: cell("active") };
  const mini = svg("svg", { class: "mini", preserveAspectRatio: "none" });
  const foot = el("div", "foot");
  const counts = el("span"), checked = el("span");
  foot.append(counts, checked);
  const lasterr = el("div", "lasterr");
  lasterr.hidden = true;
  root.append(head, stats, mini, foot, lasterr);
  return { root, badge, v, mini, counts, checked, lasterr, nameText, addrText };
}

function renderBackends(st) {
  const box = document.getElementById("backends");
  const seen = new Set();
  st.backends.forEach(b => {
    seen.add(b.address);
    let c = cards.get(b.address);
    if (!c) { c = newCard(b.address); cards.set(b.address, c); }
    box.append(c.root); // keeps the balancer's order
    c.root.dataset.state = b.state;
    c.root.dataset.name = b.name;
    c.nameText.textContent = b.name;
    c.addrText.textContent = b.address;
    c.addrText.hidden = b.name === b.address;
    c.badge.dataset.state = b.state;
    c.badge.textContent = b.state;
    const a = avg5(b.samples);
    setNum(c.v.rps, a.rps, fmtRate);
    setNum(c.v.err, a.error_rate, fmtPct);
    c.v.err.classList.toggle("bad", (a.error_rate || 0) > 0.01);
    setNum(c.v.p50, a.p50_ms, fmtMs);
    setNum(c.v.p99, a.p99_ms, fmtMs);
    c.v.inflight.textContent = fmtCount(b.in_flight);
    const color = colorOf(b.address);
    drawSeries(c.mini, st.now, [
      { points: b.samples.map(s => ({ t: s.t, v: s.rps, top: s.rps })), color, fill: true, fillOpacity: 0.2 },
    ], { height: 54, pad: 6, window: a });
    c.counts.textContent = `${fmtCount(b.requests)} requests · ${fmtCount(b.failures)} failures`;
    c.checked.textContent = b.last_check ? "checked " + fmtAgo(st.now - Date.parse(b.last_check)) : "not checked yet";
    c.lasterr.hidden = !(b.state === "down" && b.last_error);
    c.lasterr.textContent = b.last_error || "";
  });
  for (const [addr, c] of cards) {
    if (!seen.has(addr)) { c.root.remove(); cards.delete(addr); }
  }
}

let lastEventSeq = -1;
function renderEvents(st) {
  const list = document.getElementById("events");
  document.getElementById("ev-empty").hidden = st.events.length > 0;
  document.getElementById("ev-count").textContent = st.events.length ? `${st.events.length} recent` : "";
  const top = st.events.length ? st.events[0].seq : 0;
  if (top !== lastEventSeq) {
    lastEventSeq = top;
    list.replaceChildren(...st.events.map(ev => {
      const li = el("li");
      li.dataset.kind = ev.kind;
      const dot = el("i", "dot");
      dot.dataset.kind = ev.kind;
      const body = el("div");
      const topRow = el("div", "ev-top");
      const what = el("div", "ev-what");
      what.append(el("span", "mono", ev.name || ev.backend));
      const k = el("span", "k", ev.kind);
      k.dataset.kind = ev.kind;
      what.append(k);
      li.dataset.backend = ev.backend;
      const time = el("span", "ev-time", fmtClock(ev.time));
      time.dataset.t = String(Date.parse(ev.time));
      topRow.append(what, time);
      body.append(topRow);
      const detail = [ev.name && ev.name !== ev.backend ? ev.backend : "", ev.detail || ""].filter(Boolean).join(" · ");
      if (detail) body.append(el("div", "ev-detail", detail));
      li.append(dot, body);
      return li;
    }));
  }
  for (const t of list.querySelectorAll(".ev-time")) {
    t.title = fmtAgo(st.now - Number(t.dataset.t));
  }
}

function renderAxis() {
  const secs = Math.round(windowMS / 1000);
  const labels = [0, 1, 2, 3].map(i => Math.round((secs * (4 - i)) / 4) + " s ago").concat(["now"]);
  const axis = document.getElementById("axis");
  if (axis.dataset.secs === String(secs)) return;
  axis.dataset.secs = String(secs);
  axis.replaceChildren(...labels.map(l => el("span", "", l)));
}

function setLive(ok) {
  const live = document.getElementById("live");
  live.classList.toggle("on", ok);
  live.classList.toggle("off", !ok);
  document.getElementById("live-text").textContent = ok ? "live" : "offline";
  document.getElementById("banner").hidden = ok || lastOK === 0;
}

async function tick() {
  try {
    const resp = await fetch("/api/stats", { cache: "no-store" });
    if (!resp.ok) throw new Error("status " + resp.status);
    const st = await resp.json();
    const oldest = st.total.length ? st.total[0].t : st.now;
    // Whole multiples of 4 s, so the axis reads 48, 36, 24, 12 s ago.
    windowMS = Math.min(WINDOW_MS, Math.max(MIN_WINDOW_MS, Math.ceil((st.now - oldest) / 4000) * 4000));
    renderAxis();
    renderHeader(st);
    renderKPIs(st);
    renderChart(st);
    renderBackends(st);
    renderEvents(st);
    lastStats = st;
    lastOK = Date.now();
    setLive(true);
    document.body.dataset.samples = String(st.total.length);
    document.body.dataset.ready = "true";
  } catch (e) {
    setLive(false);
  } finally {
    setTimeout(tick, 1000);
  }
}

tick();
