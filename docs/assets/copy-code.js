// A pycon example copies as code Python can run: without the ">>> " and "... " prompts and without the
// output lines. Material's copy button copies the text of the closest element with a data-copy attribute.
function promptFreeCode(text) {
  const code = [];
  for (const line of text.split("\n")) {
    if (line.startsWith(">>> ") || line.startsWith("... ")) code.push(line.slice(4));
    else if (line === ">>>" || line === "...") code.push("");
  }
  return code.join("\n").trimEnd();
}

function preparePyconCopies(root) {
  for (const block of root.querySelectorAll(".language-pycon")) {
    const code = block.querySelector("code");
    if (code && !block.hasAttribute("data-copy")) block.setAttribute("data-copy", promptFreeCode(code.textContent));
  }
}

if (typeof document$ !== "undefined") {
  document$.subscribe(({ body }) => preparePyconCopies(body));
} else {
  document.addEventListener("DOMContentLoaded", () => preparePyconCopies(document.body));
}
