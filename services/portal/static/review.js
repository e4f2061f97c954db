// Review page: fetch each evidence image once (each fetch is audited), check its SHA-256 in the
// browser against the name it is filed under, and keyboard shortcuts for reviewing many a day.
(function () {
  function hex(buffer) {
    return Array.from(new Uint8Array(buffer)).map(function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }
  document.querySelectorAll(".evidence-item").forEach(function (figure) {
    var mark = figure.querySelector(".sha-check");
    fetch(figure.dataset.url, { credentials: "same-origin" }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.arrayBuffer();
    }).then(function (bytes) {
      figure.querySelector("img").src = URL.createObjectURL(new Blob([bytes], { type: "image/jpeg" }));
      if (!window.crypto || !window.crypto.subtle) { mark.textContent = "máy chủ đã kiểm tra"; return; }
      return window.crypto.subtle.digest("SHA-256", bytes).then(function (digest) {
        var ok = hex(digest) === figure.dataset.sha256;
        mark.textContent = ok ? "✓ khớp mã SHA-256" : "✗ KHÔNG khớp mã SHA-256";
        mark.className = "sha-check " + (ok ? "ok" : "bad");
        figure.dataset.verified = ok ? "true" : "false";
      });
    }).catch(function (error) {
      mark.textContent = "✗ không tải được hình ảnh (" + error.message + ")";
      mark.className = "sha-check bad";
      figure.dataset.verified = "false";
    });
  });

  document.addEventListener("keydown", function (event) {
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "select" || tag === "textarea" || event.ctrlKey || event.metaKey || event.altKey) { return; }
    var click = function (id) { var el = document.getElementById(id); if (el) { event.preventDefault(); el.click(); } };
    var focus = function (id) { var el = document.getElementById(id); if (el) { event.preventDefault(); el.focus(); if (el.select) { el.select(); } } };
    switch (event.key) {
      case "x": click("confirm"); break;
      case "t": click("reject"); break;
      case "b": focus("plate"); break;
      case "l": focus("reason"); break;
      case "n": click("skip"); break;
    }
  });
  var reject = document.getElementById("reject");
  if (reject) {
    reject.addEventListener("click", function (event) {
      if (!document.getElementById("reason").value) {
        event.preventDefault();
        document.getElementById("reason").focus();
      }
    });
  }
})();
