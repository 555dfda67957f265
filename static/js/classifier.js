/* Admin workflow pages: draw the Plotly figures built in Python, follow a running job. */
"use strict";

function drawFigures(scriptId) {
  const node = document.getElementById(scriptId);
  if (!node) return;
  const figures = JSON.parse(node.textContent);
  for (const [name, json] of Object.entries(figures)) {
    const target = document.querySelector(`[data-figure="${name}"]`);
    if (!target) continue;
    const figure = JSON.parse(json);
    Plotly.newPlot(target, figure.data, figure.layout, { responsive: true, displaylogo: false });
  }
}

function drawCurves(target, history) {
  if (!history || !history.length) return;
  const epochs = history.map((h) => h.epoch);
  const traces = [
    { x: epochs, y: history.map((h) => h.loss), name: "train loss" },
    { x: epochs, y: history.map((h) => h.accuracy), name: "train accuracy" },
    { x: epochs, y: history.map((h) => h.val_accuracy), name: "validation accuracy" },
  ];
  Plotly.react(target, traces, {
    title: { text: "Training curves" }, xaxis: { title: { text: "epoch" } },
    margin: { l: 50, r: 20, t: 50, b: 50 }, height: 340,
  }, { responsive: true, displaylogo: false });
}

function formatEta(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

function followJob(root) {
  const url = root.dataset.api;
  const terminal = ["succeeded", "failed", "cancelled"];
  const $ = (sel) => root.querySelector(sel);
  async function poll() {
    let job;
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(response.statusText);
      job = await response.json();
    } catch (err) {
      setTimeout(poll, 3000);
      return;
    }
    const result = job.result || {};
    $("[data-field=status]").textContent = job.status;
    $("[data-field=status]").className = `status ${job.status}`;
    $("[data-field=message]").textContent = job.message;
    $("[data-field=percent]").textContent = `${Math.round(job.progress * 100)}%`;
    $(".progress > span").style.width = `${job.progress * 100}%`;
    $("[data-field=epoch]").textContent = result.epochs ? `${result.epoch || 0} / ${result.epochs}` : "–";
    $("[data-field=eta]").textContent = terminal.includes(job.status) ? "–" : formatEta(result.eta_seconds) || "–";
    $("[data-field=log]").textContent = (job.log || []).join("\n");
    $("[data-field=error]").textContent = job.error || "";
    drawCurves($("[data-figure=live-curves]"), result.history);
    if (terminal.includes(job.status)) {
      if (root.dataset.status !== job.status) window.location.reload();
      return;
    }
    setTimeout(poll, 1000);
  }
  poll();
}

document.addEventListener("DOMContentLoaded", () => {
  drawFigures("figures");
  document.querySelectorAll("[data-job]").forEach(followJob);
});
