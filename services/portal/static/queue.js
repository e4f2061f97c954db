// Review queue: j/k move the selection, Enter opens the selected case.
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll("#queue tbody tr[data-href]"));
  var index = 0;
  function select(i) {
    if (!rows.length) { return; }
    rows[index].classList.remove("selected");
    index = Math.max(0, Math.min(rows.length - 1, i));
    rows[index].classList.add("selected");
    rows[index].scrollIntoView({ block: "nearest" });
  }
  select(0);
  document.addEventListener("keydown", function (event) {
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "select" || !rows.length) { return; }
    if (event.key === "j") { select(index + 1); }
    else if (event.key === "k") { select(index - 1); }
    else if (event.key === "Enter") { window.location = rows[index].dataset.href; }
  });
})();
