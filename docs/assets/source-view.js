// In an annotated source view, a link such as #L12-L30 lights up lines 12 to 30 and scrolls to them.
function highlightLines() {
  for (const line of document.querySelectorAll(".tl-line.tl-hl")) line.classList.remove("tl-hl");
  const match = /^#L(\d+)(?:-L(\d+))?$/.exec(window.location.hash);
  if (!match) return;
  const first = Number(match[1]);
  const last = Number(match[2] || match[1]);
  for (let n = first; n <= last; n++) {
    const line = document.getElementById(`L${n}`);
    if (line) line.classList.add("tl-hl");
  }
  const target = document.getElementById(`L${first}`);
  if (target) {
    const fold = target.closest("details");
    if (fold) fold.open = true;
    target.scrollIntoView({ block: "center" });
  }
}

window.addEventListener("hashchange", highlightLines);
if (typeof document$ !== "undefined") {
  document$.subscribe(() => highlightLines());
} else {
  document.addEventListener("DOMContentLoaded", highlightLines);
}
