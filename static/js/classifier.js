/* Job page: follow a running job (status, progress, log, live training curves) until it ends. */
"use strict";

function curvesFigure(history) {
  const epochs = history.map((h) => h.epoch);
  return {
    data: [
      { x: epochs, y: history.map((h) => h.loss), name: "train loss" },
      { x: epochs, y: history.map((h) => h.accuracy), name: "train accuracy" },
      { x: epochs, y: history.map((h) => h.val_accuracy), name: "validation accuracy" },
    ],
    layout: {
      title: { text: "Training curves" }, xaxis: { title: { text: "epoch" } },
      margin: { l: 50, r: 20, t: 50, b: 50 }, height: 340,
    },
  };
}

function formatEta(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

function followJob(root) {
  const terminal = ["succeeded", "failed", "cancelled"];
  const $ = (sel) => root.querySelector(sel);
  async function step() {
    const response = await fetch(root.dataset.api, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(response.statusText);
    const job = await response.json();
    const result = job.result || {};
    $("[data-field=status]").textContent = job.status;
    $("[data-field=status]").className = `status ${job.status}`;
    $("[data-field=message]").textContent = job.message;
    $("[data-field=percent]").textContent = `${Math.round(job.progress * 100)}%`;
    $("progress").value = job.progress;
    $("[data-field=epoch]").textContent = result.epochs ? `${result.epoch || 0} / ${result.epochs}` : "–";
    $("[data-field=eta]").textContent = terminal.includes(job.status) ? "–" : formatEta(result.eta_seconds) || "–";
    $("[data-field=log]").textContent = (job.log || []).join("\n");
    $("[data-field=error]").textContent = job.error || "";
    if (result.history && result.history.length) {
      EduMood.drawFigure($("[data-figure=live-curves]"), curvesFigure(result.history));
    }
    if (!terminal.includes(job.status)) return true;
    if (root.dataset.status !== job.status) window.location.reload();
    return false;
  }
  EduMood.poll(step).schedule(0);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-job]").forEach(followJob);
});
