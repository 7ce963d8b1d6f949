// Progressive enhancement only: every page works without this script (forms post to the server).
// The rule editor checks the text as it is typed and shows `check`'s errors with their caret.
(function () {
  "use strict";
  var form = document.getElementById("editor");
  if (!form) return;
  var text = document.getElementById("text"), live = document.getElementById("live");
  var csrf = form.querySelector("input[name=csrf]").value, timer = null, seq = 0;
  function show(errors) {
    live.textContent = "";
    errors.forEach(function (d) {
      var pre = document.createElement("pre");
      pre.className = "diagnostic " + d.severity;
      pre.textContent = d.rendered;
      live.appendChild(pre);
    });
    if (!errors.some(function (d) { return d.severity === "error"; })) {
      var ok = document.createElement("p");
      ok.className = "ok"; ok.textContent = "check: no errors 检查通过";
      live.appendChild(ok);
    }
  }
  function check() {
    var mine = ++seq, body = new URLSearchParams();
    body.set("text", text.value); body.set("csrf", csrf);
    fetch(form.dataset.check, {method: "POST", body: body, credentials: "same-origin",
                               headers: {"x-csrf-token": csrf}})
      .then(function (r) { return r.json(); })
      .then(function (data) { if (mine === seq && data.errors) show(data.errors); })
      .catch(function () {});
  }
  text.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(check, 300); });
})();
