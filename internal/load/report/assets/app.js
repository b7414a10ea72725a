// The report page: reads the embedded JSON and draws it with uPlot. Every
// chart shares the time axis: drag to zoom (double-click resets), hover for
// values, click a legend entry to hide or show its series.
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("report-data").textContent);
  var app = document.getElementById("app");
  var S = D.series;
  var charts = [];
  var width = function () { return Math.max(480, Math.min(1200, app.clientWidth - 20)); };

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = text;
    return e;
  }
  function section(title, note) {
    var s = el("section");
    s.appendChild(el("h2", null, title));
    if (note) s.appendChild(el("p", { "class": "note" }, note));
    app.appendChild(s);
    return s;
  }
  function fmt(v, d) { return v == null ? "–" : Number(v).toFixed(d == null ? 1 : d); }
  function secs(v) { return v == null ? "–" : fmt(v, 2) + " s"; }
  function pct(v) { return fmt(100 * v, 1) + "%"; }

  // Header: what ran.
  var head = el("dl", { "class": "meta" });
  function meta(k, v) { head.appendChild(el("dt", null, k)); head.appendChild(el("dd", null, v)); }
  meta("command", "load " + (D.args || []).join(" "));
  meta("target", D.target + " (" + D.call + ")");
  meta("started", new Date(D.startUnixMs).toISOString());
  meta("window", fmt(D.window, 3) + " s");
  meta("discovery", D.discovery ? D.discovery + (D.refresh ? ", every " + D.refresh + " s" : "") : "none: pods are known only by the calls they answered");
  var sm = D.summary;
  meta("summary", sm.Sent + " sent in " + fmt(sm.Length, 1) + " s (" + fmt(sm.Rate, 1) + "/s" +
    (sm.Asked ? " of " + sm.Asked + " asked" : ", closed loop") + "), " + sm.OK + " ok, " + sm.Failed + " failed, " +
    sm.Late + " late, " + sm.Dropped + " dropped; p50 " + fmt(sm.P50, 2) + " ms, p90 " + fmt(sm.P90, 2) +
    " ms, p99 " + fmt(sm.P99, 2) + " ms, max " + fmt(sm.Max, 2) + " ms");
  app.appendChild(head);

  // Vertical marks (autoscaler decisions) on every chart.
  function decisionsPlugin() {
    return {
      hooks: {
        draw: function (u) {
          var ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = "#8a2be2";
          ctx.setLineDash([4, 4]);
          ctx.lineWidth = 1;
          (D.decisions || []).forEach(function (m) {
            var x = Math.round(u.valToPos(m.t, "x", true));
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
          });
          ctx.restore();
        }
      }
    };
  }

  // Zoom on one chart zooms them all (and the lifecycle time line).
  var syncing = false;
  function syncZoom(u, key) {
    if (key !== "x" || syncing) return;
    syncing = true;
    var min = u.scales.x.min, max = u.scales.x.max;
    charts.forEach(function (c) { if (c !== u) c.setScale("x", { min: min, max: max }); });
    drawLifecycle(min, max);
    syncing = false;
  }

  var palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  function chart(parent, title, yLabel, series, data, extra) {
    var opts = {
      title: title, width: width(), height: 240,
      cursor: { sync: { key: "report" } },
      scales: { x: { time: false } },
      axes: [{ label: "seconds since the run began" }, { label: yLabel }],
      series: [{ label: "t (s)", value: function (u, v) { return v == null ? "–" : fmt(v, 2); } }].concat(series),
      plugins: [decisionsPlugin()],
      hooks: { setScale: [syncZoom] }
    };
    for (var k in extra || {}) opts[k] = extra[k];
    var div = el("div", { "class": "chart", "data-chart": title });
    parent.appendChild(div);
    var u = new uPlot(opts, data, div);
    charts.push(u);
    return u;
  }
  function line(label, i, extra) {
    var s = { label: label, stroke: palette[i % palette.length], width: 1.5, spanGaps: false };
    for (var k in extra || {}) s[k] = extra[k];
    return s;
  }

  var T = S.t || [];
  // Every chart and the lifecycle time line start at the run's start (or
  // the first mark before it) and end at its last window or mark.
  var tMin = T.length ? Math.min(0, T[0] - D.window) : 0, tMax = T.length ? T[T.length - 1] : 1;
  (D.pods || []).forEach(function (p) { (p.marks || []).forEach(function (m) { tMin = Math.min(tMin, m.t); tMax = Math.max(tMax, m.t); }); });
  (D.decisions || []).forEach(function (m) { tMin = Math.min(tMin, m.t); tMax = Math.max(tMax, m.t); });
  if (T.length === 0) {
    app.appendChild(el("p", null, "The run measured no window."));
  } else {
    var rate = section("Rate", "Calls per second in each window: asked (open loop), sent, completed ok and failed.");
    chart(rate, "calls/s", "calls/s", [line("asked", 7, { dash: [6, 4] }), line("sent", 0), line("ok", 2), line("failed", 3)],
      [T, S.asked, S.sent, S.ok, S.failed]);

    var lat = section("Latency", "Quantiles cover " + D.latencyCovers + ".");
    chart(lat, "latency", "ms", [line("p50", 0), line("p90", 1), line("p99", 3), line("max", 7)], [T, S.p50, S.p90, S.p99, S.max]);

    // Each pod's share, stacked, grouped by zone then node: a pod's colour
    // is its node's hue, lighter for each further pod on that node.
    var pods = Object.keys(S.byPod || {});
    var info = {};
    (D.pods || []).forEach(function (p) { info[p.name] = p; });
    pods.sort(function (a, b) {
      var pa = info[a] || {}, pb = info[b] || {};
      return (pa.zone || "").localeCompare(pb.zone || "") || (pa.node || "").localeCompare(pb.node || "") || a.localeCompare(b);
    });
    var nodes = [];
    pods.forEach(function (p) { var n = (info[p] || {}).node || ""; if (nodes.indexOf(n) < 0) nodes.push(n); });
    var perNode = {};
    var shareSeries = [], shareData = [T], raw = [];
    var acc = T.map(function () { return 0; });
    var total = T.map(function (_, j) { var n = 0; pods.forEach(function (p) { n += S.byPod[p][j]; }); return n; });
    pods.forEach(function (p) {
      var i = (info[p] || {});
      var n = i.node || "";
      var k = perNode[n] = (perNode[n] || 0) + 1;
      var hue = (nodes.indexOf(n) * 137) % 360;
      var color = "hsl(" + hue + ",65%," + Math.min(80, 30 + 12 * (k - 1)) + "%)";
      var col = S.byPod[p];
      var share = T.map(function (_, j) { return total[j] > 0 ? 100 * col[j] / total[j] : 0; });
      raw.push(share);
      acc = acc.map(function (v, j) { return v + share[j]; });
      var label = [i.zone || "-", n || "-", p].join(" / ");
      shareSeries.push({ label: label, stroke: color, fill: color, width: 1, points: { show: false },
        value: (function (r) { return function (u, v, si, idx) { return idx == null ? "–" : fmt(r[idx], 1) + "%"; }; })(share) });
      shareData.push(acc.slice());
    });
    var shares = section("Share by pod", "Each pod's share of the window's ok calls, stacked; grouped by zone / node / pod " +
      "(one hue per node). Hover shows each pod's own share.");
    if (pods.length > 0) {
      // Draw the top of the stack first so each band paints over the one above it.
      var bands = [];
      for (var b = shareSeries.length; b > 1; b--) bands.push({ series: [b, b - 1] });
      chart(shares, "share", "% of ok calls", shareSeries, shareData,
        { bands: bands, scales: { x: { time: false }, y: { range: [0, 100] } } });
    }

    var podsSec = section("Pods", "Ready endpoints (from discovery), pods that answered in each window" +
      ((D.replicas || []).length ? ", and each autoscaler's current and desired replicas (dashed lines mark its decisions)" : "") + ".");
    var ps = [line("ready", 2, { paths: uPlot.paths.stepped({ align: 1 }) }), line("answering", 0)];
    var pd = [T, S.ready, S.answering];
    (D.replicas || []).forEach(function (r, i) {
      // Step the replicas onto the windows' times.
      function at(arr) {
        return T.map(function (t) {
          var v = null;
          for (var j = 0; j < r.t.length && r.t[j] <= t; j++) v = arr[j];
          return v;
        });
      }
      ps.push(line(r.hpa + " current", 4 + 2 * i, { paths: uPlot.paths.stepped({ align: 1 }) }));
      ps.push(line(r.hpa + " desired", 5 + 2 * i, { dash: [4, 4], paths: uPlot.paths.stepped({ align: 1 }) }));
      pd.push(at(r.current), at(r.desired));
    });
    chart(podsSec, "pods", "pods", ps, pd);
  }

  // The lifecycle time line: one row per pod, one mark per event.
  var life = section("Pod lifecycle", D.discovery === "kubernetes" ?
    "From the Service's EndpointSlices: ready, not-ready, serving, not-serving, terminating; and each pod's first and last call." :
    D.discovery === "dns" ? "From DNS: when each address first appeared and was last seen (gone); and each pod's first and last call." :
      "No discovery: each pod's first and last call only.");
  var legend = el("div", { "class": "legend" });
  ["appeared", "ready", "not-ready", "serving", "not-serving", "terminating", "gone", "first-call", "last-call"].forEach(function (k) {
    var item = el("span", { "class": "legend-item" });
    item.appendChild(el("span", { "class": "sym kind-" + k }));
    item.appendChild(document.createTextNode(k));
    legend.appendChild(item);
  });
  life.appendChild(legend);
  var lanes = el("div", { "class": "lanes" });
  life.appendChild(lanes);
  function drawLifecycle(min, max) {
    lanes.textContent = "";
    if (min == null) { min = tMin; max = tMax; }
    var span = Math.max(max - min, 1e-9);
    (D.pods || []).forEach(function (p) {
      var row = el("div", { "class": "lane" + (p.new ? " new" : "") });
      row.appendChild(el("span", { "class": "lane-name", title: p.addr || "" }, p.name + (p.new ? " (new)" : "")));
      var track = el("span", { "class": "track" });
      (p.marks || []).forEach(function (m) {
        var x = (m.t - min) / span;
        var mk = el("span", { "class": "mark kind-" + m.kind, "data-kind": m.kind, "data-pod": p.name,
          title: p.name + ": " + m.kind + " at " + fmt(m.t, 2) + " s" });
        if (x < 0 || x > 1) mk.classList.add("outside");
        mk.style.left = (100 * Math.max(0, Math.min(1, x))) + "%";
        track.appendChild(mk);
      });
      row.appendChild(track);
      lanes.appendChild(row);
    });
  }
  drawLifecycle();
  // Start every chart where the time line starts (syncZoom spreads it).
  if (charts.length) charts[0].setScale("x", { min: tMin, max: tMax });

  // Tables.
  function table(parent, caption, cols, rows) {
    var t = el("table", { "data-table": caption });
    t.appendChild(el("caption", null, caption));
    var tr = el("tr");
    cols.forEach(function (c) { tr.appendChild(el("th", null, c)); });
    t.appendChild(tr);
    rows.forEach(function (r) {
      var tr = el("tr");
      r.forEach(function (v) { tr.appendChild(el("td", null, v)); });
      t.appendChild(tr);
    });
    parent.appendChild(t);
  }
  var tables = section("Summary", null);
  var readyCol = D.discovery === "dns" ? "in DNS" : "ready";
  table(tables, "by pod", ["pod", "node", "zone", "calls", readyCol, "first call", readyCol + " → first call", "last call", "terminating"],
    (D.pods || []).map(function (p) {
      return [p.name + (p.new ? " (new)" : ""), p.node || "–", p.zone || "–", String(p.calls), secs(p.ready), secs(p.firstCall),
        secs(p.readyToFirstCall), secs(p.lastCall), secs(p.terminating)];
    }));
  if ((D.neverCalled || []).length) {
    tables.appendChild(el("p", { "class": "warn" }, "Ready but never called: " + D.neverCalled.join(", ")));
  }
  [["by node", sm.ByNode], ["by zone", sm.ByZone], ["by code", sm.ByCode], ["backends by pod", sm.BackendByPod]].forEach(function (t) {
    if (!t[1] || !t[1].length) return;
    table(tables, t[0], [t[0].replace("by ", ""), "calls", "share"], t[1].map(function (r) { return [r.key, String(r.calls), pct(r.share)]; }));
  });

  // Events: lifecycle marks and autoscaler decisions, in time order.
  var evs = [];
  (D.pods || []).forEach(function (p) { (p.marks || []).forEach(function (m) { evs.push([m.t, p.name, m.kind]); }); });
  (D.decisions || []).forEach(function (m) { evs.push([m.t, "autoscaler", m.label]); });
  evs.sort(function (a, b) { return a[0] - b[0]; });
  table(section("Events", null), "events", ["t (s)", "who", "what"], evs.map(function (e) { return [fmt(e[0], 2), e[1], e[2]]; }));

  window.addEventListener("resize", function () { charts.forEach(function (c) { c.setSize({ width: width(), height: 240 }); }); });
  // For tests and the curious: what was drawn.
  window.report = { data: D, charts: charts };
})();
