// Typeset every formula with the bundled KaTeX. pymdownx.arithmatex wraps each one in an element of
// class "arithmatex": a span with \( ... \) inline, a div with \[ ... \] for display math.
function typesetMath(root) {
  for (const el of root.querySelectorAll(".arithmatex:not([data-typeset])")) {
    const tex = el.textContent.trim().replace(/^\\[([]/, "").replace(/\\[\])]$/, "");
    katex.render(tex, el, { displayMode: el.tagName === "DIV", throwOnError: false });
    el.setAttribute("data-typeset", "");
  }
}

if (typeof document$ !== "undefined") {
  document$.subscribe(({ body }) => typesetMath(body));
} else {
  document.addEventListener("DOMContentLoaded", () => typesetMath(document.body));
}
