// The directory page: load the doctor's summary after the table is on screen.
(function () {
  "use strict";
  const panel = document.getElementById("doctor");
  if (!panel) return;
  fetch(panel.dataset.src, { credentials: "same-origin" })
    .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
    .then((html) => {
      const loading = document.getElementById("doctor-loading");
      const body = document.createElement("div");
      body.className = "doctor-body";
      body.innerHTML = html;
      loading.replaceWith(body);
    })
    .catch(() => {
      document.getElementById("doctor-loading").textContent =
        "The doctor's summary could not be loaded; run `userphoto doctor` instead.";
    })
    .finally(() => panel.setAttribute("aria-busy", "false"));
})();
