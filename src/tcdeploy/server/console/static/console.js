// The console's small behaviours (no inline script: the pages' CSP allows only these files).
"use strict";
// A form with data-confirm asks first, naming what goes.
document.addEventListener("submit", (event) => {
  const message = event.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) event.preventDefault();
});
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy],[data-reveal]");
  if (!button) return;
  const target = document.getElementById(button.getAttribute("data-copy") || button.getAttribute("data-reveal"));
  if (button.hasAttribute("data-reveal")) {
    const shown = target.getAttribute("data-shown") === "1";
    target.textContent = shown ? "••••••••••••" : target.getAttribute("data-value");
    target.setAttribute("data-shown", shown ? "0" : "1");
    button.textContent = shown ? "Reveal" : "Hide";
  } else {
    const text = target.getAttribute("data-value") || target.textContent;
    (navigator.clipboard ? navigator.clipboard.writeText(text) : Promise.reject()).then(
      () => { button.textContent = "Copied"; }, () => { button.textContent = "Select and copy"; });
  }
});
// Two traffic weights always add up to 100: editing one sets the other.
document.addEventListener("input", (event) => {
  const input = event.target;
  if (!input.matches("input[data-weight]")) return;
  const others = [...input.form.querySelectorAll("input[data-weight]")].filter((i) => i !== input);
  if (others.length === 1) others[0].value = Math.max(0, 100 - (parseInt(input.value, 10) || 0));
});
// Logs: wrap on/off.
document.addEventListener("change", (event) => {
  if (event.target.id === "wrap") document.getElementById("log-box").classList.toggle("nowrap", !event.target.checked);
});
