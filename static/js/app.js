/* Behaviour every page may use, declared with data attributes instead of inline handlers (so a
   strict Content-Security-Policy holds): data-confirm on forms, data-print on buttons,
   data-autosubmit on selects, data-select-all on read-only inputs, data-copy="<input id>" on
   buttons that copy that input (saying so in its [data-copy-status]), data-nav-toggle on the
   phone menu button, data-estimate on the training form's duration line; table.stack cells get
   their column's header as data-label, which a phone shows beside each value when it stacks
   the table's rows (app.css). */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
  document.querySelectorAll("[data-print]").forEach((button) => {
    button.addEventListener("click", () => window.print());
  });
  document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    select.addEventListener("change", () => select.form.submit());
  });
  document.querySelectorAll("[data-nav-toggle]").forEach((button) => {
    const menu = document.getElementById(button.getAttribute("aria-controls"));
    button.addEventListener("click", () => {
      const open = button.getAttribute("aria-expanded") !== "true";
      button.setAttribute("aria-expanded", String(open));
      menu.classList.toggle("open", open);
    });
  });
  document.querySelectorAll("[data-copy]").forEach((button) => {
    const input = document.getElementById(button.dataset.copy);
    const status = document.querySelector(`[data-copy-status="${button.dataset.copy}"]`);
    button.addEventListener("click", async () => {
      input.select();
      try {
        await navigator.clipboard.writeText(input.value);
        status.textContent = "Copied.";
      } catch (error) {
        // No clipboard access (an http:// address, a refused permission): it stays selected.
        status.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
      }
    });
  });
  document.querySelectorAll("table.stack").forEach((table) => {
    const label = () => {
      const headers = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
      table.querySelectorAll("tbody tr").forEach((row) => {
        [...row.children].forEach((cell, column) => {
          if (headers[column] && !cell.hasAttribute("colspan")) cell.dataset.label = headers[column];
        });
      });
    };
    label();
    // Live lists (jobs) replace their rows while the page is open.
    new MutationObserver(label).observe(table, { childList: true, subtree: false });
    table.querySelectorAll("tbody").forEach((body) => new MutationObserver(label).observe(body, { childList: true }));
  });
  document.querySelectorAll("input[data-select-all]").forEach((input) => {
    input.addEventListener("click", () => input.select());
  });
  document.querySelectorAll("[data-estimate]").forEach(estimateTraining);
});

// The training form's estimated duration: training images x epochs / the speed measured on
// this installation's finished runs of the chosen architecture (JSON from the page).
function estimateTraining(line) {
  const { speeds, sizes } = JSON.parse(document.getElementById(line.dataset.estimate).textContent);
  const form = line.closest("form");
  const value = (name) => (form.elements[name] ? form.elements[name].value : "");
  const update = () => {
    const size = sizes[value("dataset_version")];
    const speed = speeds[value("arch")];
    const epochs = Number(value("epochs"));
    // An emptied field counts at its default (the value the page rendered, from ml.options).
    const fraction = value("val_fraction") || form.elements.val_fraction.defaultValue;
    const images = size * (1 - Number(fraction));
    if (!size || !epochs) {
      line.textContent = "Choose a dataset version and epochs for an estimated duration.";
    } else if (!speed) {
      line.textContent = `No finished ${value("arch")} run here yet to measure its speed: ` +
        "the first run measures it (its progress shows an ETA after the first epoch).";
    } else {
      const minutes = Math.max(1, Math.round((images * epochs) / speed / 60));
      line.textContent = `Estimated duration: about ${minutes} min (${Math.round(images)} ` +
        `training images x ${epochs} epochs at ${speed} images/s, measured on this ` +
        `installation's finished ${value("arch")} runs).`;
    }
  };
  form.addEventListener("change", update);
  form.addEventListener("input", update);
  update();
}
