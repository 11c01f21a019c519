// The endpoint page's charts: success rate, volume and latency per bucket, drawn with the vendored
// uPlot from the page's JSON data block (#endpoint-series; data, not a script: the CSP allows it).
// The charts stay left-to-right (their wrapper is dir="ltr") in every language; numbers and times are
// written in the page's language (Intl). The same figures are in the page's tables without JavaScript.
(function () {
  "use strict";
  function draw() {
    var block = document.getElementById("endpoint-series");
    if (!block || typeof uPlot === "undefined") return;
    var data = JSON.parse(block.textContent);
    var lang = document.documentElement.lang || undefined;
    var num = new Intl.NumberFormat(lang, { maximumFractionDigits: 1 });
    var span = data.times.length > 1 ? data.times[data.times.length - 1] - data.times[0] : 0;
    var when = new Intl.DateTimeFormat(
      lang,
      span > 2 * 86400 ? { month: "short", day: "numeric" } : { hour: "2-digit", minute: "2-digit" }
    );
    var style = getComputedStyle(document.body);
    var ink = style.color || "#333";
    var good = style.getPropertyValue("--pico-ins-color").trim() || "#2e7d32";
    var bad = style.getPropertyValue("--pico-del-color").trim() || "#c62828";
    var accent = style.getPropertyValue("--pico-primary").trim() || "#1565c0";
    var L = data.labels;
    var counts = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6];
    function axes(whole) {
      var y = { stroke: ink, values: function (u, v) { return v.map(function (n) { return num.format(n); }); } };
      if (whole) y.incrs = counts; // counts of attempts: no half ticks
      return [
        { stroke: ink, values: function (u, v) { return v.map(function (t) { return when.format(new Date(t * 1000)); }); } },
        y
      ];
    }
    // Rates and latencies have no value in a bucket without attempts: an attempt between empty buckets
    // is a lone point, which uPlot would not draw among many buckets; so the points are always drawn.
    function dots(colour) {
      return { show: true, size: 5, stroke: colour, fill: colour };
    }
    var charts = {
      rate: {
        series: [{}, { label: L.rate, stroke: good, width: 2, points: dots(good) }],
        cols: [data.times, data.rate],
        scales: { y: { range: [0, 100] } }
      },
      volume: {
        series: [{}, { label: L.succeeded, stroke: good, fill: good + "33", width: 1 },
                     { label: L.failed, stroke: bad, fill: bad + "33", width: 1 }],
        cols: [data.times, data.succeeded, data.failed],
        whole: true,
        scales: { y: { range: function (u, min, max) { return [0, Math.max(max, 1)]; } } }
      },
      latency: {
        series: [{}, { label: L.p50, stroke: accent, width: 2, points: dots(accent) },
                     { label: L.p95, stroke: bad, width: 2, dash: [6, 4], points: dots(bad) }],
        cols: [data.times, data.p50, data.p95],
        scales: { y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 10]; } } }
      }
    };
    var made = [];
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var c = charts[el.getAttribute("data-chart")];
      if (!c) return;
      var opts = {
        width: Math.max(el.clientWidth, 240),
        height: 180,
        series: c.series,
        axes: axes(c.whole),
        legend: { show: false },
        cursor: { show: false },
        scales: Object.assign({ x: { time: false } }, c.scales || {})
      };
      // A line of text under each chart says what the colours are (uPlot's own legend is off: its
      // table is not accessible; the page's tables hold the figures).
      var key = document.createElement("p");
      key.className = "chart-key";
      c.series.slice(1).forEach(function (s) {
        var item = document.createElement("span");
        var swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = s.stroke;
        item.appendChild(swatch);
        item.appendChild(document.createTextNode(s.label));
        key.appendChild(item);
      });
      made.push({ el: el, plot: new uPlot(opts, c.cols, el) });
      el.parentNode.appendChild(key);
    });
    var pending = null;
    window.addEventListener("resize", function () {
      clearTimeout(pending);
      pending = setTimeout(function () {
        made.forEach(function (m) { m.plot.setSize({ width: Math.max(m.el.clientWidth, 240), height: 180 }); });
      }, 150);
    });
  }
  document.addEventListener("DOMContentLoaded", draw);
})();
