// Preselect the reader's time zone from the browser, when they have not chosen one.
(function () {
  "use strict";
  var select = document.getElementById("timezone");
  if (!select || select.getAttribute("data-detect") !== "yes") { return; }
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
  if (!zone) { return; }
  for (var i = 0; i < select.options.length; i++) {
    if (select.options[i].value === zone) { select.value = zone; return; }
  }
})();
