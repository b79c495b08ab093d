// Progressive enhancement only: every page works without this file.
(function () {
  // A double-tapped submit sends one request: disable the button once the form is on its way.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (form.dataset.submitting) { e.preventDefault(); return; }
    form.dataset.submitting = "1";
    form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
  });
  // A character count beside the composer (the server applies twitter-text's weighted rule).
  document.querySelectorAll("textarea[data-counter]").forEach(function (t) {
    var out = document.getElementById(t.dataset.counter);
    if (!out) return;
    var update = function () { out.textContent = Array.from(t.value).length + " / 280"; };
    t.addEventListener("input", update);
    update();
  });
})();
