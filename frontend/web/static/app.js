// knowingnode browser page. Everything shown comes from the frontend's REST
// API on the same origin; URLs are relative so the page also works behind a
// path prefix (kubectl proxy, an ingress sub-path).
//
// The DOM is built with textContent only, never innerHTML: pod names, labels
// and error messages come from the cluster and must not become markup.
"use strict";

const AUTO_REFRESH_MS = 3000;
// After a watch broke (the frontend restarting), the page polls and tries the
// watch again this much later.
const WATCH_RETRY_MS = 5000;
const FANOUT_TIMEOUT = "5s";
const UNKNOWN_NODE = "unknown node";

// gRPC code numbers, for the {"error": {"code": n, "message": "..."}} error bodies.
const GRPC_CODES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
  "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"];

const $ = (id) => document.getElementById(id);

// el builds an element: el("span", {class: "x", "data-testid": "y"}, child, "text").
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// --- formatting of protojson values ---------------------------------------

// Durations arrive as "0.001234s".
function seconds(d) {
  if (typeof d !== "string" || !d.endsWith("s")) return null;
  const s = parseFloat(d);
  return Number.isFinite(s) ? s : null;
}

function fmtDuration(d) {
  const s = typeof d === "number" ? d : seconds(d);
  if (s === null) return "–";
  if (s < 0.001) return (s * 1000).toFixed(2) + " ms";
  if (s < 1) return (s * 1000).toFixed(1) + " ms";
  return s.toFixed(2) + " s";
}

function fmtTime(ts) {
  if (!ts) return "never";
  const t = new Date(ts);
  if (isNaN(t)) return ts;
  const ago = Math.round((Date.now() - t.getTime()) / 1000);
  let rel = "";
  if (ago >= 0 && ago < 120) rel = ` (${ago} s ago)`;
  else if (ago >= 120 && ago < 7200) rel = ` (${Math.round(ago / 60)} min ago)`;
  else if (ago >= 7200) rel = ` (${Math.round(ago / 3600)} h ago)`;
  return t.toLocaleTimeString() + rel;
}

// Enum names lose their type prefix: FAN_OUT_MODE_EACH -> EACH.
function enumName(v, prefix) {
  if (!v) return "unspecified";
  return String(v).startsWith(prefix) ? String(v).slice(prefix.length) : String(v);
}

const SOURCE_TEXT = {
  SOURCE_DOWNWARD_API: "Downward API",
  SOURCE_FALLBACK: "fallback",
  SOURCE_ABSENT: "absent",
};

// --- API --------------------------------------------------------------------

class APIError extends Error {
  constructor(status, body) {
    // Every REST error is {"error": {"code", "message"}} (a google.rpc.Status).
    if (body && body.error) body = body.error;
    const code = body && typeof body.code === "number" ? (GRPC_CODES[body.code] || String(body.code)) : `HTTP ${status}`;
    super((body && body.message) || `HTTP ${status}`);
    this.code = code;
    this.status = status;
  }
}

async function getJSON(url, signal) {
  let resp;
  try {
    resp = await fetch(url, { signal, cache: "no-store", headers: { Accept: "application/json" } });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    // The frontend itself is unreachable (restarting, port-forward gone).
    throw Object.assign(new Error(`the frontend did not answer (${err.message})`), { code: "NO RESPONSE" });
  }
  let body = null;
  try { body = await resp.json(); } catch (_) { /* not JSON: reported by status below */ }
  if (!resp.ok) throw new APIError(resp.status, body);
  return body || {};
}

// --- streams of newline-delimited JSON (grpc-gateway's server streams) -------

// openStream fetches an NDJSON endpoint. A non-2xx answer throws an APIError;
// .unsupported marks the answers that mean "no streaming here": 404 (a
// frontend without the route) and 501 (streaming turned off).
async function openStream(url, signal) {
  let resp;
  try {
    resp = await fetch(url, { signal, cache: "no-store", headers: { Accept: "application/x-ndjson" } });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw Object.assign(new Error(`the frontend did not answer (${err.message})`), { code: "NO RESPONSE" });
  }
  if (!resp.ok || !resp.body) {
    let body = null;
    try { body = await resp.json(); } catch (_) { /* not JSON: reported by status */ }
    // A stream that failed before its first message says so in a line
    // {"error": {...}}, with the HTTP status of its code.
    const err = new APIError(resp.status, body);
    err.unsupported = resp.status === 404 || resp.status === 501 || !resp.body;
    throw err;
  }
  return resp;
}

// readNDJSON calls onLine with each line's object, as each arrives, until
// the stream ends. A line {"error": {...}} (the stream failed) is thrown.
async function readNDJSON(resp, onLine) {
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  const line = (text) => {
    if (!text.trim()) return;
    const m = JSON.parse(text);
    if (m.error) {
      throw Object.assign(new Error(m.error.message || "the stream failed"),
        { code: GRPC_CODES[m.error.code] || String(m.error.code) });
    }
    onLine(m.result || {});
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

// --- this frontend's identity -------------------------------------------------

// The fields shown, with the key used in identity.sources (the proto name).
const IDENTITY_FIELDS = [
  ["Pod", "pod_name", (i) => i.podName],
  ["Namespace", "pod_namespace", (i) => i.podNamespace],
  ["Node", "node_name", (i) => i.nodeName],
  ["Zone", "zone", (i) => i.zone],
  ["Region", "region", (i) => i.region],
  ["Pod IP", "pod_ip", (i) => i.podIp],
  ["Pod IPs", "pod_ips", (i) => (i.podIps || []).join(", ")],
  ["Node IP", "node_ip", (i) => i.nodeIp],
  ["Service account", "service_account", (i) => i.serviceAccount],
  ["Hostname", "hostname", (i) => i.hostname],
  ["Pod UID", "pod_uid", (i) => i.podUid],
];

function renderIdentity(id) {
  const dl = $("frontend-identity");
  const sources = id.sources || {};
  const rows = IDENTITY_FIELDS.map(([label, key, get]) => {
    const value = get(id);
    const src = sources[key];
    // A field the frontend reports no source for gets no badge rather than a guess.
    const srcText = SOURCE_TEXT[src] || (value ? "" : "absent");
    return el("div", { class: "field", "data-field": key },
      el("dt", {}, label),
      el("dd", {},
        el("span", { class: "value", "data-testid": "fe-" + key }, value || "–"),
        srcText ? " " : null,
        srcText ? el("span", { class: "source source-" + srcText.replace(/\W+/g, "-").toLowerCase(), "data-testid": "fe-source-" + key }, srcText) : null));
  });
  const build = id.build || {};
  rows.push(el("div", { class: "field" }, el("dt", {}, "Build"),
    el("dd", {}, [build.version, build.goVersion].filter(Boolean).join(" · ") || "–")));
  rows.push(el("div", { class: "field" }, el("dt", {}, "Serving"),
    el("dd", {}, (id.servingAddresses || []).join(", ") || "–")));
  rows.push(el("div", { class: "field" }, el("dt", {}, "Started"), el("dd", {}, fmtTime(id.startTime))));
  dl.replaceChildren(...rows);
}

// --- fan-out result -------------------------------------------------------------

// groupResults folds results into node -> backend cards. In EACH mode that is
// one card per endpoint; in BALANCED mode the calls that reached the same pod
// (or failed the same way at the same address) share a card with a count.
function groupResults(results) {
  const nodes = new Map();
  const zones = new Map(); // node -> its zone, as its pods report it
  for (const r of results || []) {
    const ok = (r.code || "OK") === "OK" && r.identity;
    const node = ok ? (r.identity.nodeName || UNKNOWN_NODE) : UNKNOWN_NODE;
    if (ok && r.identity.zone) zones.set(node, r.identity.zone);
    const key = ok ? "ok|" + (r.identity.podName || "") + "|" + (r.address || "")
                   : "fail|" + (r.address || "") + "|" + (r.code || "");
    if (!nodes.has(node)) nodes.set(node, new Map());
    const cards = nodes.get(node);
    if (!cards.has(key)) cards.set(key, { ok, first: r, latencies: [], calls: 0 });
    const card = cards.get(key);
    // BALANCED results stand for several calls each (r.calls); EACH ones for one.
    card.calls += r.calls || 1;
    const s = seconds(r.latency);
    if (s !== null) card.latencies.push(s);
  }
  // Named nodes sorted, the unknown node (failures) last; cards by pod name or address.
  const names = [...nodes.keys()].sort((a, b) =>
    (a === UNKNOWN_NODE) - (b === UNKNOWN_NODE) || a.localeCompare(b));
  return names.map((name) => ({
    name,
    zone: zones.get(name) || "",
    cards: [...nodes.get(name).values()].sort((a, b) => cardName(a).localeCompare(cardName(b))),
  }));
}

function cardName(c) {
  return c.ok ? (c.first.identity.podName || c.first.address || "") : (c.first.address || "");
}

function median(xs) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}

function renderCard(c, balanced, isNew) {
  const r = c.first;
  const id = r.identity || {};
  const code = r.code || "OK";
  const lat = median(c.latencies);
  const status = c.ok
    ? el("span", { class: "badge ok", "data-testid": "status" }, "✓ OK")
    : el("span", { class: "badge failed", "data-testid": "status" }, "✗ FAILED " + code);
  const rows = [
    ["Pod IP", c.ok ? id.podIp || "–" : "–", "pod-ip"],
    ["Address", r.address || "–", "address"],
    ["DNS name", r.dnsName || "–", "dns-name"],
    // In BALANCED mode the frontend reports the latency of a group's first call.
    [balanced ? "First call" : "Latency", lat === null ? "–" : fmtDuration(lat), "latency"],
  ];
  if (balanced) rows.push(["Calls", String(c.calls), "calls"]);
  return el("article", {
    class: "backend " + (c.ok ? "is-ok" : "is-failed"),
    "data-testid": "backend",
    "data-status": c.ok ? "ok" : "failed",
    "data-code": code,
    "data-pod": c.ok ? id.podName || "" : "",
    "data-address": r.address || "",
    "data-calls": c.calls,
  },
  el("header", {},
    el("h4", { class: "pod-name", "data-testid": "pod-name" },
      c.ok ? id.podName || "(no pod name)" : "no answer from " + (r.address || "?")),
    isNew ? el("span", { class: "badge new", "data-testid": "new" }, "NEW") : null,
    status),
  el("dl", { class: "kv" }, rows.map(([k, v, t]) =>
    el("div", {}, el("dt", {}, k), el("dd", { "data-testid": t }, v)))),
  c.ok ? null : el("p", { class: "message", "data-testid": "message" }, code + ": " + (r.message || "(no message)")));
}

// trackChanges compares the pods that answered with those of the previous
// result for the same target and mode, so that someone watching a scale-up or
// a crash sees what changed, not only a new picture.
function trackChanges(resp, groups) {
  const key = resp.target + "|" + resp.mode;
  const pods = new Set(groups.flatMap((g) => g.cards.filter((c) => c.ok).map(cardName)));
  const prev = state.prev && state.prev.key === key ? state.prev.pods : null;
  state.prev = { key, pods };
  if (!prev) return { added: new Set(), removed: [] };
  return {
    added: new Set([...pods].filter((p) => !prev.has(p))),
    removed: [...prev].filter((p) => !pods.has(p)).sort(),
  };
}

function renderChanges(ch) {
  const box = $("changes");
  const parts = [];
  if (ch.added.size) parts.push("new: " + [...ch.added].sort().join(", "));
  if (ch.removed.length) parts.push("no longer answering: " + ch.removed.join(", "));
  box.textContent = parts.length ? "Since the previous result — " + parts.join("; ") : "";
  box.hidden = !parts.length;
}

// renderGroups shows a fan-out's results; partial ones (a stream still
// running) are not compared with the previous result.
function renderGroups(resp, partial) {
  const balanced = resp.mode === "FAN_OUT_MODE_BALANCED";
  const groups = groupResults(resp.results);
  const changes = partial ? { added: new Set(), removed: [] } : trackChanges(resp, groups);
  if (!partial) renderChanges(changes);
  if (!groups.length) {
    $("groups").replaceChildren(el("p", { class: "muted" }, "No backend results."));
    return;
  }
  $("groups").replaceChildren(...groups.map((g) => {
    const ok = g.cards.filter((c) => c.ok).length;
    const failed = g.cards.length - ok;
    return el("section", {
      class: "node-group" + (g.name === UNKNOWN_NODE ? " unknown" : ""),
      "data-testid": "node-group",
      "data-node": g.name === UNKNOWN_NODE ? "" : g.name,
    },
    el("h3", { class: "node-name", "data-testid": "node-name" },
      g.name === UNKNOWN_NODE ? "Unknown node (failed calls: no identity)" : "Node " + g.name,
      g.zone ? el("span", { class: "zone", "data-testid": "node-zone" }, " · zone " + g.zone) : null,
      el("span", { class: "count" }, ` · ${ok} ok` + (failed ? `, ${failed} failed` : ""))),
    el("div", { class: "cards" }, g.cards.map((c) =>
      renderCard(c, balanced, c.ok && changes.added.has(cardName(c))))));
  }));
}

function renderSummary(resp) {
  const s = resp.summary || {};
  const byCode = Object.entries(s.byCode || {}).map(([k, v]) => `${k} ${v}`).join(", ");
  // Counted beside the node groups: one zone holds several nodes, so this is
  // the spread a zone outage would cost. Absent when no backend reports a zone.
  const byZone = Object.entries(s.byZone || {}).sort((a, b) => a[0].localeCompare(b[0]))
    .map(([k, v]) => `${k} ${v}`).join(", ");
  const item = (label, value, testid, cls) =>
    el("div", { class: "stat " + (cls || "") }, el("span", { class: "stat-label" }, label),
      el("span", { class: "stat-value", "data-testid": testid }, value));
  // replaceChildren, unlike el, would print a null child as the text "null".
  $("summary").replaceChildren(...[
    item("Mode", enumName(resp.mode, "FAN_OUT_MODE_"), "sum-mode"),
    item("Target", resp.target || "–", "sum-target"),
    item("Total", String(s.total || 0), "sum-total"),
    item("OK", String(s.ok || 0), "sum-ok"),
    item("Failed", String(s.failed || 0), "sum-failed", s.failed ? "bad" : ""),
    item("p50", fmtDuration(s.latencyP50), "sum-p50"),
    item("p99", fmtDuration(s.latencyP99), "sum-p99"),
    item("Wall time", fmtDuration(s.duration), "sum-duration"),
    byCode ? item("Codes", byCode, "sum-codes") : null,
    byZone ? item("Zones", byZone, "sum-zones") : null].filter(Boolean));
}

function renderSpread(resp) {
  const box = $("spread");
  const byPod = (resp.summary || {}).byPod || {};
  const entries = Object.entries(byPod).sort((a, b) => a[0].localeCompare(b[0]));
  if (resp.mode !== "FAN_OUT_MODE_BALANCED" || !entries.length) {
    box.hidden = true;
    $("spread-rows").replaceChildren();
    return;
  }
  const total = (resp.summary && resp.summary.total) || entries.reduce((n, [, v]) => n + v, 0);
  const loads = (resp.summary && resp.summary.loadByPod) || {};
  $("spread-policy").textContent = resp.policy ? `policy ${resp.policy}` : "";
  $("spread-rows").replaceChildren(...entries.map(([pod, n]) => {
    const bar = el("span", { class: "bar" });
    // A share of all calls, so an even spread looks even and a pinned client
    // (a ClusterIP VIP) shows one full bar. CSSOM, not a style attribute: the
    // CSP forbids inline style attributes.
    bar.style.width = (total ? (100 * n) / total : 0) + "%";
    return el("div", { class: "spread-row", "data-testid": "spread-row", "data-pod": pod, "data-count": n },
      el("span", { class: "spread-pod" }, pod),
      el("span", { class: "bar-track" }, bar),
      el("span", { class: "spread-count", "data-testid": "spread-count" },
        `${n} of ${total} (${total ? Math.round((100 * n) / total) : 0}%)`),
      loadLine(loads[pod]));
  }));
  box.hidden = false;
}

// loadLine is what a pod reported with its calls (ORCA, the last report
// seen) and, under weighted_round_robin, the weight its picks used: why it
// got its share.
function loadLine(l) {
  if (!l) return el("span", { class: "spread-load muted", "data-testid": "spread-load" }, "no load report");
  const f = (v, d) => Number(v || 0).toFixed(d);
  let text = `reported: cpu ${f(l.cpuUtilization, 2)}`;
  if (l.applicationUtilization) text += ` · application ${f(l.applicationUtilization, 2)}`;
  text += ` · ${f(l.rps, 0)} calls/s`;
  if (l.eps) text += ` (${f(l.eps, 0)} failed/s)`;
  if (l.weightShare) text += l.weight ? ` · weight ${f(l.weight, 0)} (${Math.round(100 * l.weightShare)}% of picks)` : ` · no weight yet (${Math.round(100 * l.weightShare)}% of picks)`;
  return el("span", { class: "spread-load", "data-testid": "spread-load" }, text);
}

function renderDiscovery(d) {
  const body = $("discovery-body");
  if (!d) { body.replaceChildren(el("p", { class: "muted" }, "The reply carried no discovery state.")); return; }
  const kv = (k, v, t) => el("div", {}, el("dt", {}, k), el("dd", { "data-testid": t }, v));
  const eps = d.endpoints || [];
  body.replaceChildren(
    el("dl", { class: "kv wide" },
      kv("Target", d.name || "–", "disc-name"),
      kv("Mode", enumName(d.mode, "DISCOVERY_MODE_").toLowerCase(), "disc-mode"),
      kv("Query", d.query || "–", "disc-query"),
      kv("DNS server", d.dnsServer ||
        (d.mode === "DISCOVERY_MODE_STATIC" ? "none (fixed addresses)" : "system resolver"), "disc-server"),
      kv("Last refresh", fmtTime(d.lastRefresh), "disc-last-refresh"),
      kv("Last success", fmtTime(d.lastSuccess), "disc-last-success"),
      kv("Refreshes", `${d.refreshes || 0} (${d.refreshErrors || 0} failed)`, "disc-refreshes"),
      kv("Last error", d.lastError ? "⚠ " + d.lastError : "none", "disc-last-error")),
    el("h3", {}, `Endpoints (${eps.length})`),
    eps.length
      ? el("ul", { class: "endpoints", "data-testid": "disc-endpoints" }, eps.map((e) =>
        el("li", { "data-testid": "disc-endpoint" }, el("code", {}, e.address || "?"),
          e.dnsName ? el("span", { class: "muted" }, " ← " + e.dnsName) : null)))
      : el("p", { class: "muted" }, "none discovered"));
  for (const c of d.compare || []) body.append(sideBySide(d, c));
  if (d.lastError) body.classList.add("has-error"); else body.classList.remove("has-error");
}

// --- live discovery: WatchTargets, or polling when streaming is unavailable ---

const live = { mode: "", targets: new Map(), defaultTarget: "", pollTimer: null, retryTimer: null };

function setLiveMode(mode, why) {
  live.mode = mode;
  const e = $("live-mode");
  e.dataset.mode = mode;
  e.textContent = mode === "streaming"
    ? "Live: discovery changes arrive as they happen (streamed from /v1/targets:watch)."
    : `Polling /v1/targets every ${AUTO_REFRESH_MS / 1000} s: streaming is unavailable (${why}).`;
}

function selectedTarget() {
  return $("target").value || live.defaultTarget;
}

// updateTarget takes a target's state from the watch, a poll or a fan-out,
// unless it is older than the one shown (fewer refreshes: int64 arrives as
// a string).
function updateTarget(t) {
  if (!t || !t.name) return;
  const have = live.targets.get(t.name);
  if (have && Number(have.refreshes || 0) > Number(t.refreshes || 0)) return;
  live.targets.set(t.name, t);
  renderTargets();
  if (t.name === selectedTarget()) renderDiscovery(t);
}

function renderTargets() {
  const rows = [...live.targets.values()].flatMap((t) => {
    const eps = t.endpoints || [];
    const notReady = eps.filter((e) => e.slice && !e.slice.ready).length;
    const row = el("tr", { "data-testid": "target-row", "data-name": t.name, "data-endpoints": eps.length },
      el("td", {}, t.name),
      el("td", {}, enumName(t.mode, "DISCOVERY_MODE_").toLowerCase()),
      el("td", { "data-testid": "target-endpoints" }, String(eps.length) + (notReady ? ` (${notReady} not ready)` : "")),
      el("td", { class: t.lastError ? "error" : "muted", "data-testid": "target-error" }, t.lastError ? "⚠ " + t.lastError : "ok"));
    // DNS against the API: the same Service seen by a target of each kind.
    const cmp = (t.compare || []).map((c) => el("tr", { class: "compare" + (c.agree ? " agree" : " differ"),
      "data-testid": "target-compare", "data-name": t.name, "data-other": c.other, "data-agree": c.agree ? "true" : "false" },
    el("td", { colspan: 4 }, (c.agree ? "= " : "≠ ") + `beside ${c.other}: ${c.summary}`)));
    return [row, ...cmp];
  });
  $("targets-rows").replaceChildren(...rows);
}

async function pollTargets() {
  if (document.hidden) return;
  try {
    const t = await getJSON("v1/targets");
    live.defaultTarget = t.defaultTarget || live.defaultTarget;
    for (const x of t.targets || []) updateTarget(x);
  } catch (_) { /* the next poll tries again; fan-outs report the frontend's absence */ }
}

function startPolling(why) {
  setLiveMode("polling", why);
  if (live.pollTimer) return;
  pollTargets();
  live.pollTimer = setInterval(pollTargets, AUTO_REFRESH_MS);
}

function stopPolling() {
  clearInterval(live.pollTimer);
  live.pollTimer = null;
}

// watchTargets streams discovery changes. When the frontend offers no
// stream (404, 501) the page polls for good; when a stream breaks it polls
// and tries the stream again.
async function watchTargets() {
  live.retryTimer = null;
  try {
    const resp = await openStream("v1/targets:watch");
    stopPolling();
    setLiveMode("streaming");
    await readNDJSON(resp, (m) => {
      if (m.defaultTarget) live.defaultTarget = m.defaultTarget;
      updateTarget(m.target);
    });
    throw Object.assign(new Error("the watch ended"), { code: "ENDED" });
  } catch (err) {
    startPolling(`${err.code || "error"}: ${err.message}`);
    if (!err.unsupported) live.retryTimer = setTimeout(watchTargets, WATCH_RETRY_MS);
  }
}

// sideBySide shows what DNS answered next to what the EndpointSlices hold,
// for a target compared with another one of the other kind.
function sideBySide(d, c) {
  const other = live.targets.get(c.other);
  const isAPI = d.mode === "DISCOVERY_MODE_KUBERNETES";
  const dnsT = isAPI ? other : d;
  const apiT = isAPI ? d : other;
  const ip = (addr) => {
    const m = /^\[(.*)\]:\d+$/.exec(addr || "") || /^(.*):\d+$/.exec(addr || "");
    return m ? m[1] : addr || "";
  };
  const onlyDNS = new Set(c.onlyDns || []);
  const onlyAPI = new Set((c.onlyApi || []).map((x) => x.split(" ")[0]));
  const col = (title, t, item) => el("div", { class: "side", "data-testid": "side" },
    el("h4", {}, title),
    t ? el("ul", { class: "endpoints" }, (t.endpoints || []).map(item)) : el("p", { class: "muted" }, "not known yet"));
  return el("div", { class: "side-by-side", "data-testid": "side-by-side" },
    el("p", { "data-testid": "compare-summary" }, c.summary),
    el("div", { class: "sides" },
      col(`DNS (${dnsT ? dnsT.name : c.other})`, dnsT, (e) => {
        const differs = onlyDNS.has(ip(e.address));
        return el("li", { class: differs ? "differs" : "", "data-testid": "dns-address", "data-differs": differs ? "true" : "false" },
          el("code", {}, ip(e.address)), differs ? " only in DNS" : null);
      }),
      col(`API (${apiT ? apiT.name : c.other})`, apiT, (e) => {
        const s = e.slice || {};
        const cond = s.terminating ? "terminating" : s.ready ? "ready" : "not ready";
        const differs = onlyAPI.has(ip(e.address));
        return el("li", { class: differs ? "differs" : "", "data-testid": "api-endpoint", "data-differs": differs ? "true" : "false" },
          el("code", {}, ip(e.address)), ` ${cond}`, s.nodeName ? el("span", { class: "muted" }, ` on ${s.nodeName}`) : null,
          differs ? " · not in DNS" : null);
      })));
}

// --- state and control ----------------------------------------------------------

const state = { inflight: null, seq: 0, timer: null, generation: 0 };

function setStatus(kind, text) {
  const s = $("status");
  s.dataset.state = kind;
  s.textContent = text;
}

function bumpGeneration() {
  // Tests wait for this to change to know a new result is on screen.
  state.generation++;
  $("result").dataset.generation = String(state.generation);
}

function params() {
  const p = new URLSearchParams();
  if ($("target").value) p.set("target", $("target").value);
  p.set("mode", $("mode").value);
  if ($("mode").value === "BALANCED") {
    p.set("count", String(Math.max(1, parseInt($("count").value, 10) || 1)));
    p.set("policy", $("policy").value);
    // ring_hash: the calls take turns with HASH_KEYS keys, each one's calls
    // on one pod.
    if ($("policy").value === "ring_hash") for (let i = 0; i < HASH_KEYS; i++) p.append("hashKeys", `key-${i}`);
  }
  p.set("timeout", FANOUT_TIMEOUT);
  return p;
}

const HASH_KEYS = 10;
const POLICIES = ["round_robin", "pick_first", "weighted_round_robin", "least_request", "ring_hash"];

// Keep the choices in the page's URL so a view can be shared or reloaded.
function saveChoices() {
  const q = new URLSearchParams();
  if ($("target").value) q.set("target", $("target").value);
  q.set("mode", $("mode").value);
  if ($("mode").value === "BALANCED") {
    q.set("count", $("count").value);
    q.set("policy", $("policy").value);
  }
  if ($("auto").checked) q.set("auto", "1");
  history.replaceState(null, "", "?" + q.toString());
}

// How fan-outs travel: streamed (each result as it arrives) until the
// frontend says it does not stream; then one reply each.
const fanTransport = { streaming: true };

function setFanTransport(streaming, why) {
  fanTransport.streaming = streaming;
  const e = $("fanout-transport");
  e.dataset.mode = streaming ? "streaming" : "polling";
  e.textContent = streaming
    ? "Results appear as each backend answers (streamed from /v1/fanout:stream)."
    : `One reply per fan-out (/v1/fanout): streaming is unavailable (${why}).`;
}

async function fanOut() {
  // A newer request supersedes an older one still running.
  if (state.inflight) state.inflight.abort();
  const ctl = new AbortController();
  state.inflight = ctl;
  const seq = ++state.seq;
  const p = params();
  $("fanout-link").href = "v1/fanout?" + p.toString();
  setStatus("loading", "fanning out…");
  try {
    let resp = null;
    if (fanTransport.streaming) {
      try {
        resp = await fanOutStreamed(p, ctl.signal, seq);
      } catch (err) {
        if (!err.unsupported) throw err;
        setFanTransport(false, `${err.code}: ${err.message}`);
      }
    }
    if (!resp) resp = await getJSON("v1/fanout?" + p.toString(), ctl.signal);
    if (seq !== state.seq) return;
    showResult(resp);
  } catch (err) {
    if (err.name === "AbortError" || seq !== state.seq) return;
    showFanOutError(err, seq);
  } finally {
    if (state.inflight === ctl) state.inflight = null;
  }
}

// fanOutStreamed shows EACH results as they arrive and returns the whole
// response: the last line's, with the results streamed before it.
async function fanOutStreamed(p, signal, seq) {
  const resp = await openStream("v1/fanout:stream?" + p.toString(), signal);
  const mode = "FAN_OUT_MODE_" + p.get("mode");
  const results = [];
  let done = null;
  await readNDJSON(resp, (m) => {
    if (m.done) { done = m.done; return; }
    if (!m.result) return;
    results.push(m.result);
    if (seq !== state.seq || mode === "FAN_OUT_MODE_BALANCED") return;
    $("error").hidden = true;
    renderGroups({ target: p.get("target") || "", mode, results }, true);
    setStatus("loading", `fanning out… ${results.length} answered so far`);
  });
  if (!done) throw Object.assign(new Error("the stream ended before its summary"), { code: "INCOMPLETE" });
  return Object.assign({}, done, { results });
}

function showResult(resp) {
  $("error").hidden = true;
  renderSummary(resp);
  renderGroups(resp);
  renderSpread(resp);
  updateTarget(resp.discovery);
  if (!resp.discovery) renderDiscovery(null);
  if (resp.frontend) renderIdentity(resp.frontend);
  const s = resp.summary || {};
  setStatus(s.failed ? "partial" : "ok",
    `updated ${new Date().toLocaleTimeString()}: ${s.ok || 0} ok, ${s.failed || 0} failed`);
  bumpGeneration();
}

function showFanOutError(err, seq) {
  // Stale backends would mislead someone watching a scale-down: clear them.
  $("summary").replaceChildren();
  $("groups").replaceChildren();
  $("spread").hidden = true;
  $("changes").hidden = true;
  const e = $("error");
  e.replaceChildren(el("strong", {}, "Fan-out failed: " + (err.code || "error")), " ", err.message);
  e.dataset.code = err.code || "";
  e.hidden = false;
  setStatus("error", `failed ${new Date().toLocaleTimeString()}: ${err.code || ""} ${err.message}`);
  // A failed fan-out carries no discovery state, yet that is where the cause
  // usually is (a DNS error, nothing discovered). A live watch has it already.
  if (live.mode !== "streaming") {
    getJSON("v1/targets").then((t) => {
      if (seq !== state.seq) return;
      for (const x of t.targets || []) updateTarget(x);
    }, () => {});
  }
  bumpGeneration();
}

function setAuto(on) {
  clearInterval(state.timer);
  state.timer = null;
  if (on) {
    // Skip a tick while a fan-out is still running rather than pile them up,
    // and while the tab is hidden: nobody is watching, the backends need not work.
    state.timer = setInterval(() => { if (!state.inflight && !document.hidden) fanOut(); }, AUTO_REFRESH_MS);
  }
}

function syncCount() {
  $("count").disabled = $("mode").value !== "BALANCED";
  $("policy").disabled = $("mode").value !== "BALANCED";
}

async function init() {
  const q = new URLSearchParams(location.search);
  if (q.get("mode") === "BALANCED" || q.get("mode") === "EACH") $("mode").value = q.get("mode");
  if (q.get("count")) $("count").value = q.get("count");
  if (POLICIES.includes(q.get("policy"))) $("policy").value = q.get("policy");
  $("auto").checked = q.get("auto") === "1";
  syncCount();

  getJSON("v1/identity").then((r) => renderIdentity(r.identity || {}), (err) => {
    $("frontend-identity").replaceChildren(el("dd", { class: "error" }, `identity: ${err.code} ${err.message}`));
  });

  try {
    const t = await getJSON("v1/targets");
    const sel = $("target");
    sel.replaceChildren(...(t.targets || []).map((x) =>
      el("option", { value: x.name }, `${x.name} (${enumName(x.mode, "DISCOVERY_MODE_").toLowerCase()})`)));
    const want = q.get("target") || t.defaultTarget;
    if (want && [...sel.options].some((o) => o.value === want)) sel.value = want;
    live.defaultTarget = t.defaultTarget || "";
    for (const x of t.targets || []) updateTarget(x);
  } catch (err) {
    setStatus("error", `targets: ${err.code} ${err.message}`);
  }

  $("fanout-form").addEventListener("submit", (ev) => { ev.preventDefault(); saveChoices(); fanOut(); });
  $("target").addEventListener("change", () => {
    const t = live.targets.get(selectedTarget());
    if (t) renderDiscovery(t);
  });
  for (const id of ["target", "mode"]) {
    $(id).addEventListener("change", () => { syncCount(); saveChoices(); fanOut(); });
  }
  for (const id of ["count", "policy"]) $(id).addEventListener("change", () => { saveChoices(); fanOut(); });
  $("auto").addEventListener("change", () => { saveChoices(); setAuto($("auto").checked); });

  setAuto($("auto").checked);
  setFanTransport(true);
  watchTargets();
  fanOut();
}

document.addEventListener("DOMContentLoaded", init);
