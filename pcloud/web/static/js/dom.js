// Building the page. Text always goes in as text (textContent, attribute values):
// nothing here parses HTML, so a file named `<img src=x onerror=alert(1)>.jpg` is shown
// as those characters.

/** An element: h("button", {class: "primary", onclick}, "Save"). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

const UNITS = ["bytes", "KiB", "MiB", "GiB", "TiB"];

/** 12.9 MiB, 512 bytes: sizes as pcloud.sizes.format_size writes them. */
export function formatSize(bytes) {
  if (bytes === null || bytes === undefined) return "";
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${bytes} ${bytes === 1 ? "byte" : "bytes"}`;
  const text = value >= 100 || Number.isInteger(value) ? value.toFixed(0) : value.toFixed(1);
  return `${text.replace(/\.0$/, "")} ${UNITS[unit]}`;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function formatDate(iso) {
  return iso ? dateFormat.format(new Date(iso)) : "";
}

let toastTimer = null;

/** A short message in the corner, read out by screen readers. */
export function toast(message, kind = "info") {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.dataset.kind = kind;
  box.classList.add("shown");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.classList.remove("shown"), 5000);
}

/**
 * A modal dialog built from `body` (elements) with the given buttons; resolves with the
 * value of the button pressed (or null when dismissed). The form's first field gets focus.
 */
export function dialog(title, body, buttons = [{ label: "OK", value: true, primary: true }]) {
  return new Promise((resolve) => {
    const heading = h("h2", { id: "dialog-title" }, title);
    const form = h("form", { method: "dialog" }, heading, body,
      h("div", { class: "actions" },
        buttons.map((button) =>
          h("button", {
            type: button.primary ? "submit" : "button",
            class: button.primary ? "primary" : button.danger ? "danger" : "",
            value: button.primary ? "ok" : "",
            onclick: button.primary ? null : () => finish(button.value),
          }, button.label))));
    const box = h("dialog", { "aria-labelledby": "dialog-title" }, form);
    let done = false;
    const finish = (value) => {
      if (done) return;
      done = true;
      box.close();
      box.remove();
      resolve(value);
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const primary = buttons.find((button) => button.primary);
      finish(typeof primary.value === "function" ? primary.value(form) : primary.value);
    });
    box.addEventListener("cancel", () => finish(null));
    document.body.append(box);
    box.showModal();
    const first = form.querySelector("input, select");
    if (first) {
      first.focus();
      if (first.select) first.select();
    }
  });
}

/** Ask for one line of text (a new name); null when cancelled. */
export async function askText(title, label, value = "") {
  const input = h("input", { id: "dialog-text", name: "text", required: true, value, autocomplete: "off" });
  const answer = await dialog(title, h("p", {}, h("label", { for: "dialog-text" }, label), input), [
    { label: "Cancel", value: null },
    { label: "OK", value: () => input.value.trim(), primary: true },
  ]);
  return answer || null;
}

export async function confirmAction(title, text, label, danger = true) {
  return dialog(title, h("p", {}, text), [
    { label: "Cancel", value: false },
    { label, value: true, primary: true, danger },
  ]);
}
