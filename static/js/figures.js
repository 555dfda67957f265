/* Draws every [data-figure] element of a page from the plain Plotly JSON in the page's
   `figures` data block ({{ figures|json_script:"figures" }}: name -> {data, layout}). */
"use strict";
window.EduMood = window.EduMood || {};

// Plotly's toolbar (zoom, pan, download) takes the top right 200-250 px of a chart, where a
// chart narrower than this (a phone, a side-by-side card) has its title: such charts get none.
const TOOLBAR_MIN_WIDTH = 640;

EduMood.drawFigure = function (target, figure) {
  const config = {
    responsive: true,
    displaylogo: false,
    displayModeBar: target.clientWidth >= TOOLBAR_MIN_WIDTH ? "hover" : false,
  };
  // react() draws a first time and updates later calls in place (live charts).
  Plotly.react(target, figure.data, figure.layout || {}, config);
};

document.addEventListener("DOMContentLoaded", () => {
  const node = document.getElementById("figures");
  const figures = node ? JSON.parse(node.textContent) : {};
  document.querySelectorAll("[data-figure]").forEach((target) => {
    const figure = figures[target.dataset.figure];
    if (figure) EduMood.drawFigure(target, figure);
  });
});
