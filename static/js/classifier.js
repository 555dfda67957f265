/* Job page: follow a running job (status, progress, log, live training curves) until it ends. */
"use strict";

// The live twin of classifier/charts.py's training_curves: loss on the left axis, accuracies
// (0-100 %) on the right, whole-number epoch ticks.
function curvesFigure(history) {
  const epochs = history.map((h) => h.epoch);
  return {
    data: [
      { x: epochs, y: history.map((h) => h.loss), name: "train loss" },
      { x: epochs, y: history.map((h) => h.accuracy), name: "train accuracy", yaxis: "y2" },
      { x: epochs, y: history.map((h) => h.val_accuracy), name: "validation accuracy", yaxis: "y2" },
    ],
    layout: {
      title: { text: "Training curves" },
      xaxis: { title: { text: "epoch" }, tickmode: "linear", tick0: 1, dtick: Math.max(1, Math.ceil(epochs.length / 12)) },
      yaxis: { title: { text: "loss" }, rangemode: "tozero" },
      yaxis2: {
        title: { text: "accuracy" }, overlaying: "y", side: "right", range: [0, 1.02],
        tickmode: "linear", dtick: 0.25, tickformat: ".0%", showgrid: false,
      },
      legend: { orientation: "h", y: -0.25 },
      margin: { l: 55, r: 65, t: 50, b: 50 }, height: 360,
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
    // Epoch and ETA only while a training job runs.
    const detail = $("[data-field=training]");
    detail.hidden = terminal.includes(job.status) || !result.epochs;
    if (!detail.hidden) {
      $("[data-field=epoch]").textContent = `${result.epoch || 0} / ${result.epochs}`;
      $("[data-field=eta]").textContent = formatEta(result.eta_seconds) || "–";
    }
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

/* Jobs list: while a listed job is queued or running, fetch the page again and swap its rows. */
function refreshJobList(rows) {
  const running = () => rows.querySelector("[data-running]") !== null;
  if (!running()) return;
  EduMood.poll(async () => {
    const response = await fetch(window.location.href, { headers: { Accept: "text/html" } });
    if (!response.ok) throw new Error(response.statusText);
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    rows.replaceChildren(...page.querySelector("[data-job-list]").children);
    return running();
  }).schedule();
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-job]").forEach(followJob);
  document.querySelectorAll("[data-job-list]").forEach(refreshJobList);
});
