// Progressive enhancement only: every page works without this file.
(function () {
  // A double-tapped submit sends one request: disable the button once the form is on its way.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (form.dataset.submitting) { e.preventDefault(); return; }
    form.dataset.submitting = "1";
    form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
  });
  // Copy buttons beside secrets shown once (without JavaScript the field is selectable).
  document.querySelectorAll("button[data-copy]").forEach(function (b) {
    b.addEventListener("click", function () {
      var field = document.getElementById(b.dataset.copy);
      if (!field || !navigator.clipboard) { if (field) field.select(); return; }
      navigator.clipboard.writeText(field.value).then(function () { b.textContent = "Copied"; }, function () { field.select(); });
    });
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

// The buy sheet: option pickers that disable sold-out combinations, and live totals.
function enhanceBuyForm(form) {
  var el = form.querySelector("#buy-data");
  if (!el) return;
  var data = JSON.parse(el.textContent);
  var sym = data.currency === "GBP" ? "£" : "$";
  var money = function (a) { return sym + Math.floor(a / 100) + "." + String(a % 100).padStart(2, "0"); };
  // Half to even, as the server rounds.
  var bps = function (amount, rate) {
    var n = amount * rate, q = Math.floor(n / 10000), r = n - q * 10000;
    return 2 * r > 10000 || (2 * r === 10000 && q % 2 === 1) ? q + 1 : q;
  };
  var pickers = Array.from(form.querySelectorAll("fieldset.picker"));
  var chosen = function () {
    var c = {};
    pickers.forEach(function (f) { var r = f.querySelector("input:checked"); if (r) c[f.dataset.option] = r.value; });
    return c;
  };
  var update = function () {
    var c = chosen();
    // A value is selectable if some available variant has it together with the other choices.
    pickers.forEach(function (f) {
      var name = f.dataset.option;
      f.querySelectorAll("input").forEach(function (input) {
        var ok = data.variants.some(function (v) {
          if (!v.available || v.options[name] !== input.value) return false;
          return Object.keys(c).every(function (k) { return k === name || v.options[k] === c[k]; });
        });
        input.disabled = !ok;
        input.closest("label").classList.toggle("sold-out", !ok);
      });
    });
    var variant = data.variants.find(function (v) {
      return Object.keys(v.options).every(function (k) { return c[k] === v.options[k]; });
    });
    var qtyInput = form.querySelector("[name=quantity]");
    var qty = qtyInput ? Math.max(1, parseInt(qtyInput.value || "1", 10) || 1) : 1;
    var unit = variant ? variant.price : 0;
    var amount = form.querySelector("[name=amount]");
    if (amount && data.donation) {
      var a = Math.round(parseFloat(String(amount.value).replace(/[^0-9.]/g, "")) * 100);
      unit = isNaN(a) ? data.donation.min : a;
    }
    var rate = form.querySelector("[name=shipping_rate_id]:checked");
    var ship = 0;
    if (rate) { var r = data.rates.find(function (x) { return x.id === rate.value; }); ship = r ? r.price : 0; }
    var country = (form.querySelector("[name=country]") || {}).value || "";
    var taxRate = (data.tax || {})[country.trim().toUpperCase()] || 0;
    var subtotal = unit * qty, tax = bps(subtotal + ship, taxRate), total = subtotal + ship + tax;
    var set = function (k, v) { form.querySelectorAll("[data-total=" + k + "]").forEach(function (e) { e.textContent = money(v); }); };
    set("subtotal", subtotal); set("shipping", ship); set("tax", tax); set("total", total);
  };
  form.addEventListener("change", update);
  form.addEventListener("input", update);
  update();
}
document.querySelectorAll("form[data-buy-form]").forEach(enhanceBuyForm);

// Buy from the timeline: the sheet opens in a dialog over the feed instead of a new page.
document.addEventListener("click", function (e) {
  var link = e.target.closest && e.target.closest("a[data-sheet]");
  if (!link || typeof HTMLDialogElement === "undefined") return;
  e.preventDefault();
  fetch(link.dataset.sheet, { credentials: "same-origin" }).then(function (r) {
    if (r.redirected || !r.ok) { window.location = link.href; return null; }
    return r.text();
  }).then(function (html) {
    if (!html) return;
    var doc = new DOMParser().parseFromString(html, "text/html");
    var sheet = doc.querySelector("#buy-sheet");
    if (!sheet) { window.location = link.href; return; }
    var dialog = document.getElementById("buy-dialog");
    if (!dialog) {
      dialog = document.createElement("dialog");
      dialog.id = "buy-dialog";
      dialog.className = "buy-dialog";
      document.body.appendChild(dialog);
    }
    dialog.innerHTML = "<button type=button class='close link' aria-label='Close'>✕</button>";
    dialog.appendChild(document.importNode(sheet, true));
    dialog.querySelector(".close").addEventListener("click", function () { dialog.close(); });
    enhanceBuyForm(dialog.querySelector("form"));
    foldNewFields(dialog.querySelector("form"));
    dialog.showModal();
  }).catch(function () { window.location = link.href; });
});

// With a saved card or address chosen, the fields for a new one fold away.
function foldNewFields(root) {
  root.querySelectorAll("[data-when]").forEach(function (box) {
    var name = box.dataset.when;
    var sync = function () {
      var chosen = root.querySelector("input[name=" + name + "]:checked");
      box.hidden = !!chosen && chosen.value !== "new";
    };
    root.querySelectorAll("input[name=" + name + "]").forEach(function (r) { r.addEventListener("change", sync); });
    sync();
  });
}
document.querySelectorAll("form[data-buy-form]").forEach(foldNewFields);
