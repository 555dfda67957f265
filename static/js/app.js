/* Behaviour every page may use, declared with data attributes instead of inline handlers (so a
   strict Content-Security-Policy holds): data-confirm on forms, data-print on buttons,
   data-autosubmit on selects, data-select-all on read-only inputs, data-copy="<input id>" on
   buttons that copy that input (saying so in its [data-copy-status]), data-nav-toggle on the
   phone menu button; table.stack cells get their column's header as data-label, which a phone
   shows beside each value when it stacks the table's rows (app.css). */
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
});
