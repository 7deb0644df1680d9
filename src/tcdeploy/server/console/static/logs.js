// The logs page: auto refresh asks htmx to reload the log box every 5 s while the box is ticked.
"use strict";
setInterval(() => {
  const auto = document.getElementById("auto");
  if (auto && auto.checked) htmx.trigger("#log-form", "refresh");
}, 5000);
