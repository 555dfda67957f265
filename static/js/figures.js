/* Draws every [data-figure] element of a page from the plain Plotly JSON in the page's
   `figures` data block ({{ figures|json_script:"figures" }}: name -> {data, layout}). */
"use strict";
window.EduMood = window.EduMood || {};

// Plotly's toolbar (zoom, pan, download) takes the top right 200-250 px of a chart, where a
// chart narrower than this (a phone, a side-by-side card) has its title: such charts get none.
const TOOLBAR_MIN_WIDTH = 640;

// On a phone a legend under the plot took the place of the x axis' title and tick labels (they
// overprinted each other), and slanted session names took width from the plot: untitled charts
// (the dashboard's: their titles are the cards' headings) get their legend above the plot and
// upright category labels, and grow by the height the legend takes there.
const PHONE_LEGEND_HEIGHT = 140;

function forNarrow(layout) {
  if (layout.title || !layout.legend) return layout;
  const xaxis = layout.xaxis || {};
  return {
    ...layout,
    height: (layout.height || 380) + PHONE_LEGEND_HEIGHT,
    legend: { ...layout.legend, y: 1.02, yanchor: "bottom" },
    xaxis: xaxis.type === "category" ? { ...xaxis, tickangle: 90 } : xaxis,
  };
}

EduMood.drawFigure = function (target, figure) {
  const narrow = target.clientWidth < TOOLBAR_MIN_WIDTH;
  const config = {
    responsive: true,
    displaylogo: false,
    displayModeBar: narrow ? false : "hover",
  };
  const layout = figure.layout || {};
  // react() draws a first time and updates later calls in place (live charts).
  Plotly.react(target, figure.data, narrow && !layout.width ? forNarrow(layout) : layout, config);
};

document.addEventListener("DOMContentLoaded", () => {
  const node = document.getElementById("figures");
  const figures = node ? JSON.parse(node.textContent) : {};
  document.querySelectorAll("[data-figure]").forEach((target) => {
    const figure = figures[target.dataset.figure];
    if (figure) EduMood.drawFigure(target, figure);
  });
});
