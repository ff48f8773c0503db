// Small progressive touches; every page works without this file.
document.addEventListener("DOMContentLoaded", () => {
  // Filters that apply as soon as they change.
  document.querySelectorAll("select.js-autosubmit").forEach((s) => {
    s.addEventListener("change", () => s.form && s.form.requestSubmit());
  });
  // A second look before changes that cannot be undone (the server checks them anyway).
  document.querySelectorAll("form[data-confirm]").forEach((f) => {
    f.addEventListener("submit", (e) => {
      if (!window.confirm(f.dataset.confirm)) e.preventDefault();
    });
  });
  // "Back" goes back when there is somewhere to go.
  document.querySelectorAll("a.js-back").forEach((a) => {
    a.addEventListener("click", (e) => {
      if (history.length > 1) { e.preventDefault(); history.back(); }
    });
  });
  // One press per form: a slow answer is not sent twice.
  document.querySelectorAll("form[method=post]").forEach((f) => {
    f.addEventListener("submit", () => {
      f.querySelectorAll("button").forEach((b) => { setTimeout(() => { b.disabled = true; }, 0); });
    });
  });
});
