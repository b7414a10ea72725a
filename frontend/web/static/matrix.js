// The matrix page: asks /v1/matrix:stream for every frontend x backend
// pod, paints each round's cells as it arrives, then the whole matrix with
// its node and zone collapses; and lists DNS against EndpointSlice
// disagreements. Everything from the cluster is set as text, never markup.
"use strict";

const GRPC_CODES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
  "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"];
const LIVE_EVERY_MS = 5000;

const $ = (id) => document.getElementById(id);
const el = (tag, props, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "dataset") Object.assign(e.dataset, v);
    else if (k === "class") e.className = v;
    else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
};

function apiError(status, body) {
  const code = body && typeof body.code === "number" ? (GRPC_CODES[body.code] || String(body.code)) : `HTTP ${status}`;
  return Object.assign(new Error((body && body.message) || `HTTP ${status}`), { code, status });
}

async function getJSON(url, signal) {
  const resp = await fetch(url, { signal, cache: "no-store", headers: { Accept: "application/json" } });
  let body = null;
  try { body = await resp.json(); } catch (_) { /* reported by status */ }
  if (!resp.ok) throw apiError(resp.status, body);
  return body || {};
}

// stream reads an NDJSON stream of grpc-gateway, calling onMsg per line.
async function stream(url, signal, onMsg) {
  const resp = await fetch(url, { signal, cache: "no-store", headers: { Accept: "application/x-ndjson" } });
  if (!resp.ok || !resp.body) {
    let body = null;
    try { body = await resp.json(); } catch (_) { /* reported by status */ }
    throw apiError(resp.status, body && body.error ? body.error : body);
  }
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  const line = (text) => {
    if (!text.trim()) return;
    const m = JSON.parse(text);
    if (m.error) throw apiError(200, m.error);
    onMsg(m.result || {});
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
      line(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  }
  line(buf);
}

const secs = (d) => (d ? parseFloat(d) : NaN); // protojson Duration "0.000412s"
const ms = (s) => (s >= 0.1 ? (s * 1000).toFixed(0) : s >= 0.001 ? (s * 1000).toFixed(2) : (s * 1000).toFixed(3)) + " ms";

// --- state ---------------------------------------------------------------------

const state = {
  paths: [],      // requested targets
  rows: new Map(),    // key -> MatrixPod
  columns: new Map(), // key -> MatrixPod
  cells: new Map(),   // target -> Map(row|col -> cell), pod level, live
  done: null,         // the last whole matrix
  abort: null,
  timer: null,
  generation: 0,
  rounds: 0,
};

function view() {
  return document.querySelector("input[name=mx-view]:checked").value;
}

function reset(targets) {
  state.paths = targets;
  state.rows = new Map();
  state.columns = new Map();
  state.cells = new Map(targets.map((t) => [t, new Map()]));
  state.done = null;
}

function onRound(r) {
  state.rounds++;
  $("mx-result").dataset.rounds = String(state.rounds);
  if (r.row) state.rows.set(r.row.key, r.row);
  for (const c of r.columns || []) state.columns.set(c.key, c);
  const cells = state.cells.get(r.target);
  if (cells) for (const c of r.cells || []) cells.set(c.row + "\u0000" + c.column, c);
  render();
}

function onDone(m) {
  state.done = m;
  state.rows = new Map((m.rows || []).map((r) => [r.key, r]));
  state.columns = new Map((m.columns || []).map((c) => [c.key, c]));
  for (const p of m.paths || []) {
    state.cells.set(p.target, new Map((p.cells || []).map((c) => [c.row + "\u0000" + c.column, c])));
  }
  state.generation++;
  render();
  $("mx-result").dataset.generation = String(state.generation);
}

// --- rendering -------------------------------------------------------------------

const byNodeThenKey = (a, b) => (a.nodeName || "").localeCompare(b.nodeName || "") || a.key.localeCompare(b.key);

// axes returns the rows and columns of the current view: pods, or the nodes
// or zones they collapse to.
function axes(v) {
  const rows = [...state.rows.values()].sort(byNodeThenKey);
  const cols = [...state.columns.values()].sort(byNodeThenKey);
  if (v === "pods") {
    return {
      rows: rows.map((r) => ({ key: r.key, sub: [r.nodeName, r.zone].filter(Boolean).join(" · "), error: r.error })),
      cols: cols.map((c) => ({ key: c.key, sub: [c.nodeName, c.zone].filter(Boolean).join(" · ") })),
    };
  }
  const field = v === "nodes" ? "nodeName" : "zone";
  const uniq = (pods) => [...new Set(pods.map((p) => p[field] || ""))].sort()
    .map((k) => ({ key: k, label: k || "(unknown)", sub: "" }));
  return { rows: uniq(rows), cols: uniq(cols) };
}

function cellsOf(target, v) {
  if (v === "pods") return state.cells.get(target) || new Map();
  const p = state.done && (state.done.paths || []).find((x) => x.target === target);
  const list = p ? (v === "nodes" ? p.nodeCells : p.zoneCells) || [] : [];
  return new Map(list.map((c) => [c.row + "\u0000" + c.column, c]));
}

function render() {
  const v = view();
  const box = $("mx-paths");
  box.replaceChildren();
  const { rows, cols } = axes(v);
  for (const target of state.paths) {
    const cells = cellsOf(target, v);
    const p50s = [...cells.values()].filter((c) => c.ok > 0).map((c) => secs(c.latencyP50)).filter((x) => x > 0);
    const lo = Math.log(Math.min(...p50s)), hi = Math.log(Math.max(...p50s));
    const table = el("table", { class: "mx-table", dataset: { testid: "mx-table", target, view: v } });
    const head = el("tr", {}, el("th", {}, v === "pods" ? "frontend \\ backend" : v === "nodes" ? "node \\ node" : "zone \\ zone"));
    for (const c of cols) head.append(el("th", { scope: "col", dataset: { testid: "mx-col" } }, c.label || c.key, c.sub ? el("small", {}, c.sub) : null));
    table.append(el("thead", {}, head));
    const body = el("tbody");
    for (const r of rows) {
      const th = el("th", { scope: "row", dataset: { testid: "mx-row" } }, r.label || r.key, r.sub ? el("small", {}, r.sub) : null);
      if (r.error) {
        th.append(el("small", { class: "mx-rowerr", title: r.error, dataset: { testid: "mx-row-error" } }, "⚠ " + r.error));
      }
      const tr = el("tr", {}, th);
      for (const c of cols) {
        const cell = cells.get(r.key + "\u0000" + c.key);
        tr.append(cellElement(cell, r.key, c.key, lo, hi));
      }
      body.append(tr);
    }
    table.append(body);
    const path = (state.done && (state.done.paths || []).find((x) => x.target === target)) || null;
    const mode = path && path.mode ? " · " + path.mode.replace("DISCOVERY_MODE_", "").toLowerCase() : "";
    const section = el("div", { class: "mx-path", dataset: { testid: "mx-path", target } },
      el("h3", {}, "path: " + target + mode),
      v !== "pods" && !state.done ? el("p", { class: "hint" }, "The collapsed views come with the whole matrix.") : null,
      el("div", { class: "mx-scroll" }, table),
      el("p", { class: "mx-summary", dataset: { testid: "mx-summary" } }, path && path.summary ? path.summary.line || "" : ""));
    box.append(section);
  }
}

function cellElement(cell, row, col, lo, hi) {
  const td = el("td", { dataset: { testid: "mx-cell", row, col } });
  if (!cell) {
    td.className = "mx-empty";
    td.textContent = "·";
    td.dataset.code = "";
    td.title = `${row} → ${col}: no calls`;
    return td;
  }
  const calls = cell.calls || 0, ok = cell.ok || 0;
  td.dataset.code = cell.code || "";
  td.dataset.calls = String(calls);
  const p50 = secs(cell.latencyP50), p99 = secs(cell.latencyP99);
  const codes = Object.entries(cell.byCode || {}).map(([k, n]) => `${k} ${n}`).join(", ");
  td.title = `${row} → ${col}\n${calls} calls: ${codes || "none sent"}` +
    (ok ? `\np50 ${ms(p50)}, p99 ${ms(p99)} (over the ${ok} that succeeded)` : "") +
    (cell.notSent ? `\n${cell.notSent} not sent` : "") + (cell.message ? `\n${cell.message}` : "");
  if (ok === 0) {
    td.className = "mx-fail";
    td.textContent = cell.code || "—";
    return td;
  }
  td.dataset.p50ms = (p50 * 1000).toFixed(3);
  const t = hi > lo ? (Math.log(p50) - lo) / (hi - lo) : 0;
  td.style.backgroundColor = `hsl(${Math.round(140 - 140 * t)}, 65%, 72%)`;
  td.textContent = ms(p50);
  if (ok < calls) {
    td.classList.add("mx-partial");
    td.append(el("small", {}, " " + cell.code));
  }
  return td;
}

// --- running ---------------------------------------------------------------------

function status(text, stateName) {
  const s = $("mx-status");
  s.textContent = text;
  s.dataset.state = stateName;
}

function showError(err) {
  const e = $("mx-error");
  if (!err) { e.hidden = true; e.textContent = ""; return; }
  e.hidden = false;
  e.textContent = `${err.code || "ERROR"}: ${err.message}`;
  e.dataset.code = err.code || "";
}

function params() {
  const targets = [$("mx-target").value, $("mx-compare").value].filter(Boolean);
  const q = new URLSearchParams();
  for (const t of [...new Set(targets)]) q.append("targets", t);
  q.set("calls", $("mx-calls").value || "3");
  return { targets: [...new Set(targets)], query: q };
}

async function run() {
  clearTimeout(state.timer);
  if (state.abort) state.abort.abort();
  const abort = new AbortController();
  state.abort = abort;
  const { targets, query } = params();
  syncURL();
  reset(targets);
  render();
  showError(null);
  status("asking every frontend…", "running");
  const start = performance.now();
  try {
    await stream("v1/matrix:stream?" + query, abort.signal, (m) => {
      if (m.round) onRound(m.round);
      if (m.done) onDone(m.done);
    });
    const d = state.done;
    status(d ? `${(d.rows || []).length} frontends × ${(d.columns || []).length} backend pods, ${d.calls} calls each, in ${((performance.now() - start) / 1000).toFixed(1)} s`
      : "the stream ended without a matrix", d ? "done" : "error");
  } catch (err) {
    if (err.name === "AbortError") return;
    showError(err);
    status("failed", "error");
  }
  if (state.abort === abort && $("mx-live").checked) state.timer = setTimeout(run, LIVE_EVERY_MS);
  loadDisagreements();
}

function syncURL() {
  const q = new URLSearchParams();
  q.set("target", $("mx-target").value);
  if ($("mx-compare").value) q.set("compare", $("mx-compare").value);
  q.set("calls", $("mx-calls").value);
  q.set("view", view());
  if ($("mx-live").checked) q.set("live", "1");
  history.replaceState(null, "", "?" + q);
}

async function loadDisagreements() {
  let list = [];
  try { list = (await getJSON("v1/disagreements")).disagreements || []; } catch (_) { return; }
  const body = $("mx-dis-rows");
  body.replaceChildren();
  for (const d of list) {
    const lasted = secs(d.duration) || 0;
    body.append(el("tr", { dataset: { testid: "mx-disagreement", open: d.end ? "false" : "true" } },
      el("td", {}, d.target || ""), el("td", {}, d.other || ""),
      el("td", {}, d.start ? new Date(d.start).toLocaleTimeString() : ""),
      el("td", {}, `${lasted.toFixed(1)} s${d.end ? "" : " (so far)"}`), el("td", {}, d.summary || "")));
  }
  $("mx-dis-none").hidden = list.length > 0;
}

async function init() {
  const q = new URLSearchParams(location.search);
  if (q.get("calls")) $("mx-calls").value = q.get("calls");
  if (q.get("live") === "1") $("mx-live").checked = true;
  const v = document.querySelector(`input[name=mx-view][value="${CSS.escape(q.get("view") || "pods")}"]`);
  if (v) v.checked = true;
  try {
    const lt = await getJSON("v1/targets");
    for (const t of lt.targets || []) {
      $("mx-target").append(el("option", { value: t.name }, t.name));
      $("mx-compare").append(el("option", { value: t.name }, t.name));
    }
    $("mx-target").value = q.get("target") || lt.defaultTarget || "";
    $("mx-compare").value = q.get("compare") || "";
  } catch (err) {
    showError(err);
  }
  $("mx-form").addEventListener("submit", (e) => { e.preventDefault(); run(); });
  $("mx-live").addEventListener("change", () => {
    syncURL();
    if ($("mx-live").checked && $("mx-status").dataset.state !== "running") run();
  });
  for (const r of document.querySelectorAll("input[name=mx-view]")) {
    r.addEventListener("change", () => { syncURL(); render(); });
  }
  run();
}

document.addEventListener("DOMContentLoaded", init);
