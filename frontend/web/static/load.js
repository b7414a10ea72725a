// Load panel: POST v1/load streams newline-delimited JSON, a window per
// second and then the summary; the charts are plain SVG drawn from them.
// Every line names the run (runId); once the run ends, or is stopped, the
// frontend serves its HTML report at v1/load/runs/<runId>/report, offered
// as a download. Pod names come from the cluster: they only ever become
// text or attributes.
"use strict";

(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const COLORS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
  const $ = (id) => document.getElementById(id);
  let abort = null;   // AbortController of the running load
  let windows = [];   // windows received so far
  let nodeOf = {};    // pod -> node, as windows tell
  let runId = "";     // the running load's, from its lines

  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    return e;
  }
  const num = (v) => Number(v || 0); // int64 arrives as a JSON string
  const secs = (d) => (typeof d === "string" ? parseFloat(d) : 0);

  function setStatus(text, state) {
    const s = $("load-status");
    s.textContent = text;
    s.dataset.state = state;
  }

  // Each pod's color is fixed by its first appearance.
  const colorOf = {};
  function color(pod) {
    if (!(pod in colorOf)) colorOf[pod] = COLORS[Object.keys(colorOf).length % COLORS.length];
    return colorOf[pod];
  }

  // Pods, ordered by node then name, so a node's pods sit together in the stack.
  function pods() {
    return Object.keys(nodeOf).sort((a, b) =>
      (nodeOf[a] + "\0" + a).localeCompare(nodeOf[b] + "\0" + b));
  }

  // frame clears an SVG and returns x/y scalers for n points up to ymax.
  function frame(el, n, ymax) {
    el.replaceChildren();
    const [, , w, h] = el.getAttribute("viewBox").split(" ").map(Number);
    const pad = 4;
    const x = (i) => pad + (n <= 1 ? 0 : (i * (w - 2 * pad)) / (n - 1));
    const y = (v) => h - pad - (ymax > 0 ? (v * (h - 2 * pad)) / ymax : 0);
    const label = svg("text", { x: pad + 2, y: 14, "font-size": 11, fill: "#555" });
    label.textContent = String(Math.round(ymax * 10) / 10);
    el.append(label);
    return { x, y };
  }

  function line(el, pts, stroke, testid) {
    el.append(svg("polyline", { points: pts.join(" "), fill: "none", stroke, "stroke-width": 2, "data-testid": testid }));
  }

  function drawShare() {
    const el = $("load-share");
    const { x, y } = frame(el, windows.length, 100);
    const order = pods();
    const base = windows.map(() => 0);
    for (const pod of order) {
      const top = windows.map((w, i) => {
        const ok = num(w.ok);
        return base[i] + (ok > 0 ? (100 * num((w.byPod || {})[pod])) / ok : 0);
      });
      const upper = top.map((v, i) => `${x(i)},${y(v)}`);
      const lower = base.map((v, i) => `${x(i)},${y(v)}`).reverse();
      const last = windows.length ? top[top.length - 1] - base[base.length - 1] : 0;
      el.append(svg("polygon", {
        points: upper.concat(lower).join(" "), fill: color(pod), "fill-opacity": 0.85,
        "data-pod": pod, "data-node": nodeOf[pod], "data-share": Math.round(last),
      }));
      top.forEach((v, i) => { base[i] = v; });
    }
    const legend = $("load-legend");
    legend.replaceChildren(...order.map((pod) => {
      const sw = svg("svg", { class: "swatch", viewBox: "0 0 10 10" });
      sw.append(svg("rect", { width: 10, height: 10, fill: color(pod) }));
      const w = windows[windows.length - 1];
      const share = w && num(w.ok) > 0 ? Math.round((100 * num((w.byPod || {})[pod])) / num(w.ok)) : 0;
      const item = document.createElement("span");
      item.dataset.pod = pod;
      item.dataset.share = share;
      item.append(sw, `${pod} (${nodeOf[pod] || "?"}) ${share}%`);
      return item;
    }));
  }

  function drawLines(id, series) {
    const el = $(id);
    const ymax = Math.max(1, ...series.flatMap((s) => s.values)) * 1.1;
    const { x, y } = frame(el, windows.length, ymax);
    for (const s of series) line(el, s.values.map((v, i) => `${x(i)},${y(v)}`), s.color, s.testid);
  }

  function draw() {
    drawShare();
    drawLines("load-rate-chart", [
      { values: windows.map((w) => w.rate || 0), color: "#4e79a7", testid: "load-rate-line" },
      { values: windows.map((w) => num(w.failed) / Math.max(secs(w.length), 0.001)), color: "#e15759", testid: "load-failed-line" },
    ]);
    drawLines("load-latency", [
      { values: windows.map((w) => 1000 * secs((w.latency || {}).p50)), color: "#59a14f", testid: "load-p50" },
      { values: windows.map((w) => 1000 * secs((w.latency || {}).p99)), color: "#f28e2b", testid: "load-p99" },
    ]);
    const w = windows[windows.length - 1];
    const failed = Object.entries((w && w.byCode) || {}).filter(([c]) => c !== "OK");
    $("load-failures").textContent = failed.length
      ? "Failures in the last second: " + failed.map(([c, n]) => `${c} ${n}`).join(", ")
      : "No failures in the last second.";
    $("load-failures").dataset.codes = failed.map(([c]) => c).join(",");
  }

  function onLine(text) {
    if (!text.trim()) return;
    const msg = JSON.parse(text);
    if (msg.error) throw new Error(msg.error.message || "load failed");
    const r = msg.result || {};
    if (/^[0-9a-f]{32}$/.test(r.runId || "")) runId = r.runId;
    const w = r.window || r.summary;
    if (!w) return;
    for (const pod of Object.keys(w.byPod || {})) {
      color(pod);
      nodeOf[pod] = (w.podNode || {})[pod] || nodeOf[pod] || "";
    }
    if (r.window) {
      windows.push(w);
      draw();
      setStatus(`running: ${windows.length}s, ${Math.round(w.rate || 0)}/s, ok ${num(w.ok)}, failed ${num(w.failed)}`, "running");
    } else {
      setStatus(`done: ${num(w.sent)} calls, ${Math.round(w.rate || 0)}/s, ok ${num(w.ok)}, failed ${num(w.failed)}`, "done");
    }
  }

  // offerReport links the report of the run that just ended, if it has one.
  function offerReport() {
    const a = $("load-report");
    if (!runId) return;
    a.href = `v1/load/runs/${runId}/report`;
    a.dataset.run = runId;
    a.dataset.windows = windows.length;
    a.hidden = false;
  }

  async function start(ev) {
    ev.preventDefault();
    if (abort) return;
    windows = [];
    nodeOf = {};
    runId = "";
    $("load-report").hidden = true;
    abort = new AbortController();
    $("load-start").disabled = true;
    $("load-stop").disabled = false;
    setStatus("starting…", "starting");
    const target = $("load-target").value;
    try {
      const resp = await fetch("v1/load", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          target, mode: "FAN_OUT_MODE_" + $("load-mode").value,
          rate: Number($("load-rate").value), duration: `${Number($("load-duration").value)}s`,
        }),
        signal: abort.signal,
      });
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          onLine(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
      }
      onLine(buf);
    } catch (e) {
      if (e.name === "AbortError") setStatus(`stopped after ${windows.length}s`, "stopped");
      else setStatus(`error: ${e.message}`, "error");
    } finally {
      offerReport();
      abort = null;
      $("load-start").disabled = false;
      $("load-stop").disabled = true;
    }
  }

  async function init() {
    $("load-form").addEventListener("submit", start);
    $("load-stop").addEventListener("click", () => abort && abort.abort());
    try {
      const resp = await fetch("v1/targets");
      const t = await resp.json();
      $("load-target").replaceChildren(...(t.targets || []).map((x) => {
        const o = document.createElement("option");
        o.value = x.name;
        o.textContent = x.name;
        o.selected = x.name === t.defaultTarget;
        return o;
      }));
    } catch (e) {
      setStatus(`error: ${e.message}`, "error");
    }
  }
  document.addEventListener("DOMContentLoaded", init);
})();
