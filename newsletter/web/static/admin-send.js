// The send-now page: polls the run's progress and updates the numbers in place.
(function () {
  "use strict";
  var box = document.getElementById("run");
  if (!box) { return; }
  var url = box.getAttribute("data-progress");
  var fields = ["total", "sent", "failed", "skipped"];

  function show(run) {
    box.setAttribute("data-state", run.state);
    document.getElementById("run-state").textContent = run.state;
    fields.forEach(function (name) {
      document.getElementById("run-" + name).textContent = String(run[name]);
    });
    var bar = document.getElementById("run-bar");
    bar.max = Math.max(run.total, 1);
    bar.value = run.sent + run.failed + run.skipped;
    document.getElementById("run-message").textContent = run.message;
    var start = document.getElementById("start");
    if (start) { start.disabled = run.running; }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok || response.redirected) { throw new Error("signed out"); }
        return response.json();
      })
      .then(function (run) {
        show(run);
        if (run.running) { window.setTimeout(poll, 500); }
      })
      .catch(function () {
        document.getElementById("run-message").textContent =
          "Lost contact with the server: reload the page.";
      });
  }

  poll();
})();
