/* Draws every [data-figure] element of a page from the plain Plotly JSON in the page's
   `figures` data block ({{ figures|json_script:"figures" }}: name -> {data, layout}). */
"use strict";
window.EduMood = window.EduMood || {};

EduMood.drawFigure = function (target, figure) {
  // react() draws a first time and updates later calls in place (live charts).
  Plotly.react(target, figure.data, figure.layout || {}, { responsive: true, displaylogo: false });
};

document.addEventListener("DOMContentLoaded", () => {
  const node = document.getElementById("figures");
  const figures = node ? JSON.parse(node.textContent) : {};
  document.querySelectorAll("[data-figure]").forEach((target) => {
    const figure = figures[target.dataset.figure];
    if (figure) EduMood.drawFigure(target, figure);
  });
});
