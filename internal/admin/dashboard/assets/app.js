// Legate dashboard: polls dashboard/data every second, keeps the points
// the server has sent, and redraws small SVG charts. No libraries, so the
// page works with nothing but the admin address. Every text that comes from
// the proxy is set with textContent, never parsed as HTML.
"use strict";

const POLL_MS = 1000;
const SVG = "http://www.w3.org/2000/svg";
const COLORS = {
  qps: "#2563eb", err: "#dc2626", p50: "#16a34a", p90: "#d97706", p99: "#dc2626",
  rx: "#0891b2", tx: "#7c3aed", cpu: "#2563eb", rss: "#0891b2", heap: "#7c3aed",
  cx: "#16a34a", cxr: "#d97706",
};

const state = {
  now: 0,             // server time of the latest sample (unix ms)
  historyMs: 300000,
  entities: new Map(), // key -> {meta, points}
  proc: [],
  oldest: 0,          // time of the oldest point held
  server: {},
  traceIds: "",
  selectedTrace: "",
};

// ---------- formatting ----------

function isNum(v) { return typeof v === "number" && isFinite(v); }

function fmtNum(v, digits) {
  if (!isNum(v)) return "–";
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  if (digits === undefined) digits = a >= 100 ? 0 : a >= 10 ? 1 : 2;
  return v.toFixed(digits);
}

function fmtBytes(v) {
  if (!isNum(v)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v.toFixed(0) : v.toFixed(v >= 100 ? 0 : 1)) + " " + units[i];
}

function fmtMs(v) {
  if (!isNum(v)) return "–";
  if (v >= 1000) return (v / 1000).toFixed(v >= 10000 ? 0 : 2) + " s";
  return (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + " ms";
}

function fmtUs(us) {
  if (us >= 1e6) return (us / 1e6).toFixed(2) + " s";
  if (us >= 1000) return (us / 1000).toFixed(us >= 1e5 ? 0 : 1) + " ms";
  return us + " µs";
}

function fmtDuration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  if (d > 0) return d + "d " + h + "h";
  if (h > 0) return h + "h " + m + "m";
  if (m > 0) return m + "m " + (s % 60) + "s";
  return s + "s";
}

function fmtClock(ms) {
  const d = new Date(ms);
  const p = (n, w) => String(n).padStart(w || 2, "0");
  return p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds()) + "." + p(d.getMilliseconds(), 3);
}

// ---------- DOM helpers ----------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function setText(id, text) {
  const e = document.getElementById(id);
  if (e && e.textContent !== text) e.textContent = text;
}

// ---------- charts ----------

// niceMax rounds a maximum up to 1, 2 or 5 times a power of ten; with
// binary set, of ten within a power of 1024 (50 MiB rather than 47.7 MiB).
function niceMax(v, binary) {
  if (binary && !(v > 1024)) return 1024;
  if (!(v > 0)) return 1;
  if (binary) {
    const u = Math.pow(1024, Math.max(0, Math.floor(Math.log(v) / Math.log(1024))));
    return niceMax(v / u) * u;
  }
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// drawChart redraws a line chart into box: series is [{name, color, values:
// [[t, v], ...]}], time runs up to state.now.
// Nulls break a line rather than drop it to zero.
function drawChart(box, series, fmt, binary) {
  const w = Math.max(box.clientWidth, 100), h = Math.max(box.clientHeight, 40);
  const padL = 44, padR = 4, padT = 4, padB = 4;
  // The time axis grows with the data from one minute up to the history
  // kept, so a fresh server's charts are not squeezed against the right.
  const t1 = state.now;
  const t0 = Math.max(t1 - state.historyMs, Math.min(state.oldest, t1 - 30000));
  let top = 0;
  for (const s of series) for (const [, v] of s.values) if (isNum(v) && v > top) top = v;
  top = niceMax(top, binary);
  const x = t => padL + (w - padL - padR) * (t - t0) / (t1 - t0);
  const y = v => padT + (h - padT - padB) * (1 - v / top);

  const root = svg("svg", { viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: "none" });
  for (const f of [0, 0.5, 1]) {
    const gy = y(top * f);
    root.append(svg("line", { class: "grid", x1: padL, x2: w - padR, y1: gy, y2: gy }));
    const label = svg("text", { class: "axis", x: padL - 4, y: gy + 3, "text-anchor": "end" });
    label.textContent = f === 0 ? "0" : fmt(top * f);
    root.append(label);
  }
  for (const s of series) {
    let d = "", n = 0, pen = false;
    for (const [t, v] of s.values) {
      if (t < t0 || !isNum(v)) { pen = false; continue; }
      d += (pen ? "L" : "M") + x(t).toFixed(1) + " " + y(v).toFixed(1);
      pen = true;
      n++;
    }
    root.append(svg("path", { class: "series", d: d || "M0 0", stroke: s.color, "data-series": s.name, "data-points": n }));
  }
  box.replaceChildren(root);
}

function legend(box, items) {
  box.replaceChildren(...items.map(([name, color, text]) =>
    el("span", {}, el("i", { style: "background:" + color }), name + " " + text)));
}

// ---------- state merge ----------

function mergePoints(old, fresh) {
  const last = old.length ? old[old.length - 1].t : -Infinity;
  for (const p of fresh) if (p.t > last) old.push(p);
  const cutoff = state.now - state.historyMs;
  let i = 0;
  while (i < old.length && old[i].t < cutoff) i++;
  return i ? old.slice(i) : old;
}

function merge(data) {
  state.now = data.now;
  state.historyMs = data.history_ms || state.historyMs;
  state.server = data.server || {};
  state.proc = mergePoints(state.proc, data.process.points);
  state.oldest = state.proc.length ? state.proc[0].t : state.now;
  const keys = new Set();
  for (const [kind, list] of [["listener", data.listeners], ["cluster", data.clusters]]) {
    for (const meta of list) {
      keys.add(meta.key);
      let e = state.entities.get(meta.key);
      if (!e) { e = { points: [] }; state.entities.set(meta.key, e); }
      e.kind = kind;
      e.meta = meta;
      e.points = mergePoints(e.points, meta.points);
    }
  }
  for (const k of state.entities.keys()) if (!keys.has(k)) state.entities.delete(k);
}

// ---------- process ----------

function renderProcess(data) {
  const pts = state.proc;
  const last = pts.length ? pts[pts.length - 1] : {};
  const st = ["LIVE", "DRAINING", "PRE_INITIALIZING", "INITIALIZING"][state.server.state] || "";
  const badge = document.getElementById("state");
  badge.textContent = st;
  badge.className = "badge " + st.toLowerCase();
  badge.hidden = st === "";
  setText("uptime", "up " + fmtDuration(data.uptime_s));
  setText("updated", "updated " + fmtClock(data.now));
  setText("cpu", isNum(last.cpu) ? last.cpu.toFixed(1) + " %" : "–");
  setText("mem", fmtBytes(last.rss) + " RSS");
  setText("conns", fmtNum(last.cx, 0) + " active");
  setText("gor", fmtNum(last.gor, 0));
  setText("fds", fmtNum(last.fds, 0));
  setText("heap", fmtBytes(last.heap));
  setText("conc", isNum(state.server.concurrency) ? String(state.server.concurrency) : "–");
  setText("rate-window", String(data.rate_window_ms / 1000));
  setText("lat-window", String(data.latency_window_ms / 1000));
  setText("history", String(Math.round(data.history_ms / 60000)));
  const col = k => pts.map(p => [p.t, p[k]]);
  drawChart(document.getElementById("chart-cpu"), [{ name: "cpu", color: COLORS.cpu, values: col("cpu") }], v => v.toFixed(0) + "%");
  drawChart(document.getElementById("chart-mem"), [
    { name: "rss", color: COLORS.rss, values: col("rss") },
    { name: "heap", color: COLORS.heap, values: col("heap") },
  ], fmtBytes, true);
  drawChart(document.getElementById("chart-cx"), [
    { name: "cx", color: COLORS.cx, values: col("cx") },
    { name: "cxr", color: COLORS.cxr, values: col("cxr") },
  ], v => fmtNum(v));
}

// ---------- listener and cluster cards ----------

function figure(label, cls) {
  const v = el("span", { class: "value " + cls });
  return [el("div", { class: "fig" }, el("span", { class: "label" }, label), v), v];
}

function chartBox(title) {
  const lg = el("div", { class: "legend" });
  const c = el("div", { class: "chart" });
  return [el("div", { class: "chart-box" }, el("div", { class: "label" }, title), lg, c), lg, c];
}

function buildCard(e) {
  const m = e.meta;
  const sub = [m.address, m.http ? "http." + m.http : ""].filter(Boolean).join(" · ");
  const card = el("article", { class: "card", "data-key": m.key, "data-kind": e.kind, "data-name": m.name });
  const head = el("div", { class: "card-head" }, el("h3", {}, m.name), el("span", { class: "sub" }, sub));
  const members = el("span", { class: "members" });
  if (e.kind === "cluster") head.append(members);
  const figs = {};
  const grid = el("div", { class: "figures" });
  for (const [k, label] of [["qps", "Requests/s"], ["p50", "p50"], ["p90", "p90"], ["p99", "p99"], ["err", "Errors (5xx)"], ["cx", "Connections"]]) {
    const [box, v] = figure(label, k);
    figs[k] = v;
    grid.append(box);
  }
  const bar = el("div", { class: "classbar" });
  const classLegend = el("div", { class: "classlegend" });
  const [c1, l1, ch1] = chartBox("Requests/s");
  const [c2, l2, ch2] = chartBox("Latency");
  const [c3, l3, ch3] = chartBox(e.kind === "cluster" ? "Upstream bytes/s" : "Downstream bytes/s");
  card.append(head, grid, bar, classLegend, el("div", { class: "charts" }, c1, c2, c3));
  const parts = { card, figs, bar, classLegend, members, charts: [[l1, ch1], [l2, ch2], [l3, ch3]] };
  if (e.kind === "cluster") {
    parts.hosts = el("tbody");
    card.append(el("table", { class: "hosts" },
      el("thead", {}, el("tr", {}, ...["Host", "Health", "Weight", "Requests/s", "Active rq", "Connections", "Requests", "Errors"]
        .map((h, i) => el("th", { class: i >= 2 ? "num" : "" }, h)))),
      parts.hosts));
  }
  return parts;
}

function renderCard(e) {
  const m = e.meta, p = e.parts, pts = e.points;
  const last = pts.length ? pts[pts.length - 1] : {};
  const set = (k, text, value) => {
    const v = p.figs[k];
    v.textContent = text;
    v.setAttribute("data-value", isNum(value) ? String(value) : "");
  };
  set("qps", fmtNum(last.qps), last.qps);
  set("p50", fmtMs(last.p50), last.p50);
  set("p90", fmtMs(last.p90), last.p90);
  set("p99", fmtMs(last.p99), last.p99);
  set("err", isNum(last.err) ? (last.err * 100).toFixed(1) + " %" : "–", last.err);
  p.figs.err.classList.toggle("bad", last.err > 0);
  set("cx", String(m.active), m.active);
  if (e.kind === "cluster") {
    // The host list when the server lists hosts, else the membership gauges.
    let healthy = m.healthy || 0, members = m.members || 0;
    if (m.hosts && m.hosts.length) {
      members = m.hosts.length;
      healthy = m.hosts.filter(h => h.healthy).length;
    }
    p.members.textContent = members > 0 ? healthy + "/" + members + " hosts healthy" : "no hosts";
    p.members.classList.toggle("degraded", healthy < members || members === 0);
  }

  // Status classes: the share of each over the rate window, with rates.
  const cls = last.cls || [];
  const sum = cls.reduce((a, v) => a + (isNum(v) ? v : 0), 0);
  p.bar.replaceChildren(...cls.map((v, i) => el("span", { class: "c" + (i + 1), style: "width:" + (sum > 0 && isNum(v) ? 100 * v / sum : 0) + "%" })));
  p.classLegend.replaceChildren(...["1xx", "2xx", "3xx", "4xx", "5xx"].map((name, i) =>
    el("span", { "data-class": name }, el("i", { class: "c" + (i + 1) }), name + " " + fmtNum(cls[i]) + "/s · " + fmtNum(m.totals.cls[i], 0))));

  const col = k => pts.map(q => [q.t, q[k]]);
  const err5 = pts.map(q => [q.t, q.cls ? q.cls[4] : null]);
  const [[l1, ch1], [l2, ch2], [l3, ch3]] = p.charts;
  legend(l1, [["total", COLORS.qps, fmtNum(last.qps)], ["5xx", COLORS.err, fmtNum(cls[4])]]);
  drawChart(ch1, [{ name: "qps", color: COLORS.qps, values: col("qps") }, { name: "5xx", color: COLORS.err, values: err5 }], v => fmtNum(v));
  legend(l2, [["p50", COLORS.p50, fmtMs(last.p50)], ["p90", COLORS.p90, fmtMs(last.p90)], ["p99", COLORS.p99, fmtMs(last.p99)]]);
  drawChart(ch2, ["p50", "p90", "p99"].map(k => ({ name: k, color: COLORS[k], values: col(k) })), fmtMs);
  legend(l3, [["in", COLORS.rx, fmtBytes(last.rx) + "/s"], ["out", COLORS.tx, fmtBytes(last.tx) + "/s"]]);
  drawChart(ch3, [{ name: "rx", color: COLORS.rx, values: col("rx") }, { name: "tx", color: COLORS.tx, values: col("tx") }], fmtBytes, true);

  if (p.hosts) {
    p.hosts.replaceChildren(...(m.hosts || []).map(h => el("tr", { class: "host", "data-address": h.address, "data-healthy": String(h.healthy) },
      el("td", { class: "mono" }, h.address + (h.hostname ? " (" + h.hostname + ")" : "")),
      el("td", { class: "health " + (h.healthy ? "ok" : "bad") }, h.health_flags),
      el("td", { class: "num" }, String(h.weight)),
      el("td", { class: "num" }, fmtNum(h.qps)),
      el("td", { class: "num" }, String(h.rq_active)),
      el("td", { class: "num" }, String(h.cx_active)),
      el("td", { class: "num" }, fmtNum(h.rq_total, 0)),
      el("td", { class: "num" }, fmtNum(h.rq_error, 0)))));
  }
}

function renderCards(kind, containerId) {
  const box = document.getElementById(containerId);
  const list = [...state.entities.values()].filter(e => e.kind === kind);
  if (list.length === 0) return;
  // Rebuild only when the set of entities changes, so charts keep their
  // elements between polls.
  const sig = list.map(e => e.meta.key + "|" + e.meta.name).join(",");
  if (box.dataset.sig !== sig) {
    for (const e of list) e.parts = buildCard(e);
    box.replaceChildren(...list.map(e => e.parts.card));
    box.dataset.sig = sig;
  }
  for (const e of list) {
    if (!e.parts) { box.dataset.sig = ""; return renderCards(kind, containerId); }
    renderCard(e);
  }
}

// ---------- traces ----------

function renderTraces(traces) {
  const section = document.getElementById("traces-section");
  if (traces === null) {
    document.getElementById("traces-empty").textContent = "Tracing is not enabled on this server.";
    section.classList.add("disabled");
    return;
  }
  const ids = traces.map(t => t.id + t.spans).join(",");
  if (ids === state.traceIds) return;
  // Hold the list still while the pointer is on it, so a busy proxy's
  // traces can be clicked.
  if (document.querySelector(".trace-list:hover")) return;
  state.traceIds = ids;
  document.getElementById("traces-empty").hidden = traces.length > 0;
  document.getElementById("traces").replaceChildren(...traces.map(t => {
    const status = el("td", { class: t.error || Number(t.status) >= 500 ? "err" : "" }, t.status || (t.error ? "error" : ""));
    const row = el("tr", { class: "trace" + (t.id === state.selectedTrace ? " selected" : ""), "data-id": t.id },
      el("td", { class: "mono" }, fmtClock(t.start)),
      el("td", {}, t.name + (t.service ? " " : ""), el("span", { class: "muted" }, t.service || "")),
      status,
      el("td", { class: "num" }, String(t.spans)),
      el("td", { class: "num" }, fmtUs(t.duration_us)));
    row.addEventListener("click", () => showTrace(t.id));
    return row;
  }));
}

async function showTrace(id) {
  state.selectedTrace = id;
  for (const r of document.querySelectorAll("tr.trace")) r.classList.toggle("selected", r.dataset.id === id);
  const box = document.getElementById("waterfall");
  let t;
  try {
    const resp = await fetch("dashboard/trace?id=" + encodeURIComponent(id));
    if (!resp.ok) throw new Error(await resp.text());
    t = await resp.json();
  } catch (err) {
    box.replaceChildren(el("p", { class: "empty" }, "Trace unavailable: " + err.message));
    return;
  }
  const total = Math.max(t.duration_us, 1);
  const rows = [];
  for (const s of t.span_list) {
    const isErr = s.tags.some(([k, v]) => k === "error" && v === "true");
    const bar = el("div", {
      class: "span-bar" + (s.kind === "CLIENT" ? " client" : "") + (isErr ? " error" : ""),
      style: `left:${100 * s.offset_us / total}%;width:${Math.max(100 * s.duration_us / total, 0.3)}%`,
      title: `${s.name}: +${fmtUs(s.offset_us)}, ${fmtUs(s.duration_us)}`,
    });
    const name = el("div", { class: "span-name", style: `padding-left:${s.depth * 14}px` },
      s.name, el("small", {}, " " + [s.service, s.kind].filter(Boolean).join(" · ")));
    const row = el("div", { class: "span-row", "data-span": s.id }, name,
      el("div", { class: "span-track" }, bar), el("div", { class: "num mono" }, fmtUs(s.duration_us)));
    const tags = el("table", { class: "span-tags", hidden: true },
      el("tbody", {}, el("tr", {}, el("td", {}, "span"), el("td", {}, s.id + (s.parent ? " ← " + s.parent : ""))),
        el("tr", {}, el("td", {}, "offset"), el("td", {}, "+" + fmtUs(s.offset_us))),
        ...s.tags.map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, v)))));
    row.append(tags);
    row.addEventListener("click", () => { tags.hidden = !tags.hidden; });
    rows.push(row);
  }
  box.replaceChildren(
    el("h3", {}, t.name),
    el("div", { class: "meta" }, "trace " + t.id + " · " + t.spans + (t.spans === 1 ? " span · " : " spans · ") + fmtUs(t.duration_us) + " · started " + fmtClock(t.start)),
    ...rows);
  // The first span's tags open by default: they hold the request's story.
  const first = box.querySelector(".span-tags");
  if (first) first.hidden = false;
}

// ---------- polling ----------

async function poll() {
  try {
    const resp = await fetch("dashboard/data?since=" + state.now, { cache: "no-store" });
    if (!resp.ok) throw new Error("HTTP " + resp.status);
    const data = await resp.json();
    if (data.now < state.now) {
      // The server restarted: start over.
      state.now = 0;
      state.proc = [];
      state.entities.clear();
      return;
    }
    merge(data);
    renderProcess(data);
    renderCards("listener", "listeners");
    renderCards("cluster", "clusters");
    renderTraces(data.traces);
  } catch (err) {
    const badge = document.getElementById("state");
    badge.textContent = "OFFLINE";
    badge.hidden = false;
    badge.className = "badge stale";
    setText("updated", String(err.message || err));
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
