// hookline's dashboard: the little it needs in the browser. Times are written by the server in UTC and
// rewritten here in the viewer's own time zone and language (Intl); everything works without it.
(function () {
  "use strict";
  function localTimes(root) {
    var lang = document.documentElement.lang || undefined;
    var format = new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" });
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when.getTime())) {
        el.textContent = format.format(when);
        el.title = when.toISOString();
      }
    });
  }
  // The test form: choosing an event type puts its example in the data field (the server pre-fills the
  // first one; an empty field sends the type's example anyway).
  function examples(root) {
    root.querySelectorAll("select[data-example-target]").forEach(function (select) {
      select.addEventListener("change", function () {
        var target = document.getElementById(select.getAttribute("data-example-target"));
        var option = select.options[select.selectedIndex];
        if (target && option) target.value = option.getAttribute("data-example") || "";
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    examples(document);
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    localTimes(event.target);
  });
})();
