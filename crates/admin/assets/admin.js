// Progressive enhancement only: every page works without this file.
// - Forms marked data-confirm ask before they are sent.
// - On a narrow screen the navigation folds behind a button.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });
  var nav = document.getElementById("main-nav");
  var toggle = document.getElementById("nav-toggle");
  if (nav && toggle) {
    toggle.hidden = false;
    nav.classList.add("collapsed");
    toggle.setAttribute("aria-expanded", "false");
    toggle.addEventListener("click", function () {
      var open = nav.classList.toggle("collapsed") === false;
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }
})();
