/* Behaviour every page may use, declared with data attributes instead of inline handlers (so a
   strict Content-Security-Policy holds): data-confirm on forms, data-print on buttons,
   data-autosubmit on selects, data-select-all on read-only inputs, data-copy="<input id>" on
   buttons that copy that input (saying so in its [data-copy-status]), data-nav-toggle on the
   phone menu button. */
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
  document.querySelectorAll("input[data-select-all]").forEach((input) => {
    input.addEventListener("click", () => input.select());
  });
});
