// The monitoring page: asks monitor.json (the API's monitor data) for the window and draws one
// uPlot chart per figure, one line per series (a version, or a replica).
"use strict";
(function () {
  const form = document.getElementById("monitor-form");
  const holder = document.getElementById("charts");
  const note = document.getElementById("monitor-note");
  const COLORS = ["#0052d9", "#e37318", "#00a870", "#d54941", "#7b61ff", "#0594fa", "#b5871f", "#5b6475"];
  let plots = [];

  // Series sampled at their own times, on one shared time axis (null where one has no point).
  function aligned(series) {
    const times = [...new Set(series.flatMap((s) => s.t))].sort((a, b) => a - b);
    const index = new Map(times.map((t, i) => [t, i]));
    const columns = series.map((s) => {
      const column = new Array(times.length).fill(null);
      s.t.forEach((t, i) => { column[index.get(t)] = s.v[i]; });
      return column;
    });
    return [times, ...columns];
  }

  function draw(chart, box, window) {
    const points = chart.series.reduce((n, s) => n + s.v.length, 0);
    box.setAttribute("data-points", String(points));
    if (!points) {
      const empty = document.createElement("div");
      empty.className = "empty";
      empty.textContent = "No data in this window.";
      box.appendChild(empty);
      return;
    }
    const opts = {
      width: Math.max(320, box.clientWidth - 16), height: 200,
      series: [{}, ...chart.series.map((s, i) => ({
        label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false,
        points: { show: s.v.length < 60 },
      }))],
      axes: [{}, { size: 60 }],
      // The window asked for, however few points fall in it.
      scales: { x: { time: true, range: () => [window.start, window.end] } },
    };
    plots.push(new uPlot(opts, aligned(chart.series), box));
  }

  async function load(event) {
    if (event) event.preventDefault();
    const params = new URLSearchParams(new FormData(form));
    note.textContent = "Loading…";
    const reply = await fetch(form.getAttribute("data-source") + "?" + params, { credentials: "same-origin" });
    if (!reply.ok) { note.textContent = "Could not load the figures: " + reply.status; return; }
    const data = await reply.json();
    plots.forEach((p) => p.destroy());
    plots = [];
    holder.innerHTML = "";
    // Every box first, then the charts: each sized to its own cell of the finished grid.
    const boxes = data.charts.map((chart) => {
      const box = document.createElement("section");
      box.className = "chart";
      box.setAttribute("data-chart", chart.title);
      box.innerHTML = "<h3></h3>";
      box.querySelector("h3").textContent = `${chart.title} (${chart.unit})`;
      holder.appendChild(box);
      return box;
    });
    data.charts.forEach((chart, i) => draw(chart, boxes[i], data));
    note.textContent = "Updated " + new Date().toLocaleTimeString();
    holder.setAttribute("data-loaded", "1");
  }

  form.addEventListener("submit", load);
  load();
  setInterval(() => { if (form.range.value !== "custom") load(); }, 30000);
})();
