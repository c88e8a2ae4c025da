/* Stoa dashboard: draws every [data-chart] element with uPlot from the JSON spec the page
   rendered beside it. Spec: {type: "lines"|"scatter", x: {label, unit}, y: {label, unit},
   series: [{label, x: [...], y: [...], points?: bool, dash?: bool, mark?: bool}]}.
   "lines" overlays curves that may have different x values (steps); "scatter" draws
   points, with optional series drawn as lines (a Pareto front, a constraint). */
(function () {
  "use strict";
  var PALETTE = ["#1f5fbf", "#c2410c", "#15803d", "#7c3aed", "#be185d", "#0e7490",
                 "#a16207", "#4b5563", "#dc2626", "#2563eb"];

  function axisLabel(axis) {
    if (!axis) return "";
    return axis.unit ? axis.label + " (" + axis.unit + ")" : axis.label;
  }

  function fmt(v) {
    if (v == null) return "—";
    if (Number.isInteger(v)) return v.toLocaleString();
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(3);
    return a < 1 ? String(parseFloat(v.toPrecision(4))) : v.toLocaleString(undefined, {maximumFractionDigits: 3});
  }

  function size(el) {
    var width = Math.max(260, el.clientWidth || el.parentNode.clientWidth || 600);
    return {width: width, height: Math.round(Math.min(360, Math.max(220, width * 0.5)))};
  }

  function linesChart(el, spec) {
    var tables = spec.series.map(function (s) { return [s.x, s.y]; });
    var data = tables.length === 1 ? [tables[0][0], tables[0][1]] : uPlot.join(tables);
    var series = [{label: axisLabel(spec.x), value: function (u, v) { return fmt(v); }}];
    spec.series.forEach(function (s, i) {
      series.push({label: s.label, stroke: PALETTE[i % PALETTE.length], width: 2,
                   spanGaps: true, points: {show: s.x.length < 60, size: 5},
                   value: function (u, v) { return fmt(v); }});
    });
    var opts = Object.assign(size(el), {
      series: series,
      scales: {x: {time: false}},
      axes: [{label: axisLabel(spec.x), values: function (u, vals) { return vals.map(fmt); }},
             {label: axisLabel(spec.y), size: 70,
              values: function (u, vals) { return vals.map(fmt); }}],
      legend: {live: true},
    });
    return new uPlot(opts, data, el);
  }

  function drawPoints(u, seriesIdx) {
    var s = u.series[seriesIdx];
    var radius = (s.mark ? 7 : 4.5) * devicePixelRatio;
    uPlot.orient(u, seriesIdx, function (series, dataX, dataY, scaleX, scaleY, valToPosX,
                                         valToPosY, xOff, yOff, xDim, yDim) {
      var d = u.data[seriesIdx];
      var path = new Path2D();
      for (var i = 0; i < d[0].length; i++) {
        if (d[0][i] == null || d[1][i] == null) continue;
        var cx = valToPosX(d[0][i], scaleX, xDim, xOff);
        var cy = valToPosY(d[1][i], scaleY, yDim, yOff);
        path.moveTo(cx + radius, cy);
        path.arc(cx, cy, radius, 0, 2 * Math.PI);
      }
      u.ctx.save();
      u.ctx.fillStyle = s._stroke;
      u.ctx.strokeStyle = s.mark ? "#111" : s._stroke;
      u.ctx.lineWidth = devicePixelRatio * (s.mark ? 2 : 1);
      u.ctx.fill(path);
      u.ctx.stroke(path);
      u.ctx.restore();
    });
    return null;
  }

  function scatterChart(el, spec) {
    var data = [null];
    var series = [{}];
    spec.series.forEach(function (s, i) {
      data.push([s.x, s.y]);
      var color = s.color || PALETTE[i % PALETTE.length];
      var line = !s.points;
      series.push({label: s.label, stroke: color, _stroke: color, mark: !!s.mark,
                   width: line ? 2 : 0, dash: s.dash ? [6, 4] : undefined,
                   paths: line ? uPlot.paths.linear() : drawPoints,
                   points: {show: false},
                   value: function (u, v) { return fmt(v); },
                   facets: [{scale: "x", auto: true}, {scale: "y", auto: true}]});
    });
    var opts = Object.assign(size(el), {
      mode: 2,
      series: series,
      scales: {x: {time: false}},
      axes: [{label: axisLabel(spec.x), values: function (u, vals) { return vals.map(fmt); }},
             {label: axisLabel(spec.y), size: 70,
              values: function (u, vals) { return vals.map(fmt); }}],
      legend: {live: false},
      cursor: {drag: {x: false, y: false}},
    });
    return new uPlot(opts, data, el);
  }

  function draw(root) {
    (root || document).querySelectorAll("[data-chart]").forEach(function (el) {
      if (el.dataset.drawn) return;
      var source = document.getElementById(el.dataset.chart);
      if (!source || typeof uPlot === "undefined") return;
      var spec = JSON.parse(source.textContent);
      el.dataset.drawn = "1";
      el._plot = spec.type === "scatter" ? scatterChart(el, spec) : linesChart(el, spec);
    });
  }

  window.addEventListener("resize", function () {
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      if (el._plot) el._plot.setSize(size(el));
    });
  });
  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSettle", function (e) { draw(e.target); });
  window.stoaDrawCharts = draw;
})();

/* Keyboard shortcuts: an element with data-key="k" is pressed (a button) or focused (a
   text field) when k is typed outside a text field; Escape leaves a text field. The
   review page labels with 1, 2, 3…, focuses the correction with c and releases with r,
   so a reviewer can clear a queue without the mouse. One submission per page: a second
   key press while the next item loads does nothing. */
(function () {
  "use strict";
  var sent = false;
  function typing(el) {
    return el && (el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable ||
                  (el.tagName === "INPUT" && !/^(button|submit|checkbox|radio)$/.test(el.type)));
  }
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
    if (typing(e.target)) {
      if (e.key === "Escape") e.target.blur();
      return;
    }
    if (e.key.length !== 1) return;
    var el = document.querySelector('[data-key="' + CSS.escape(e.key) + '"]');
    if (!el || el.disabled) return;
    e.preventDefault();
    if (typing(el)) { el.focus(); return; }
    if (sent) return;
    if (el.type === "submit") sent = true;
    el.click();
  });
  window.addEventListener("pageshow", function () { sent = false; });
})();
