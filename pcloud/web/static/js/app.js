// The pcloud web app: sign in, browse, upload, download, organise, trash, account.

import { ApiError, api, authorizedFetch, call, contentUrl, onSessionChange, refresh, register, serverFeatures, signIn, signOut, zipUrl } from "./api.js";
import { askText, clear, confirmAction, dialog, formatDate, formatSize, h, toast } from "./dom.js";
import { FolderData, VirtualList } from "./listing.js";
import { UploadQueue, forgetUpload, unfinishedUploads } from "./upload.js";

const main = document.getElementById("main");
const topbar = document.getElementById("topbar");
const ICONS = new Set(["folder", "image", "video", "audio", "pdf", "text", "archive", "generic"]);
const SORTS = [
  ["name", "Name"],
  ["modified_at", "Date"],
  ["size", "Size"],
];
const folderNames = new Map(); // folder id -> {name, parent_id}, for breadcrumbs
const thumbnails = new Map(); // file id -> blob: URL, or null when there is none
const THUMBNAILS_KEPT = 600;
let thumbnailsMissing = false; // a server without the thumbnail API (icons instead)

const state = {
  me: null,
  data: null,
  list: null,
  selection: new Map(), // "file:12" -> entry
  mode: localStorage.getItem("pcloud-view") === "grid" ? "grid" : "list",
  sort: "name",
  order: "asc",
};

const uploads = new UploadQueue({
  onChange: () => renderUploads(),
  onStored: () => {
    refreshSoon();
    updateQuota();
  },
});

function icon(kind) {
  return h("img", { class: "icon", src: `icons/${ICONS.has(kind) ? kind : "generic"}.svg`, alt: "", width: 24, height: 24 });
}

const keyOf = (entry) => `${entry.type}:${entry.id}`;

function describeError(error) {
  if (error instanceof ApiError) return error.message;
  return "The server did not answer: check the connection and try again";
}

async function attempt(action, done) {
  try {
    const result = await action();
    if (done) toast(done);
    return result;
  } catch (error) {
    toast(describeError(error), "error");
    return undefined;
  }
}

// ---- routing -------------------------------------------------------------------------

function route() {
  const [, section = "files", argument = "root"] = location.hash.split("/");
  if (!state.me && section !== "register") return renderSignIn();
  if (section === "register") return state.me ? go("#/files/root") : renderRegister();
  for (const link of document.querySelectorAll(".topnav a")) {
    if (link.dataset.section === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (section === "trash") return renderTrash();
  if (section === "account") return renderAccount();
  return renderFiles(/^\d+$/.test(argument) ? argument : "root");
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

window.addEventListener("hashchange", () => route());

onSessionChange(async (isSignedIn) => {
  if (!isSignedIn && state.me) {
    state.me = null;
    topbar.hidden = true;
    renderSignIn();
  }
});

async function start() {
  let signedInNow = false;
  try {
    signedInNow = await refresh();
  } catch {
    signedInNow = false;
  }
  if (signedInNow) await loadMe();
  await route();
  performance.mark("pcloud-interactive"); // bench/web.py reads it
}

async function loadMe() {
  state.me = await api.me();
  topbar.hidden = false;
  renderQuota();
}

async function updateQuota() {
  try {
    state.me = await api.me();
    renderQuota();
  } catch {
    // shown again at the next change
  }
}

function renderQuota() {
  const { usage_bytes: used, quota_bytes: quota } = state.me;
  const box = document.getElementById("quota");
  if (quota) {
    clear(box, h("span", {}, `${formatSize(used)} of ${formatSize(quota)} used`),
      h("progress", { max: quota, value: Math.min(used, quota), "aria-label": "Storage used" }));
  } else {
    clear(box, h("span", {}, `${formatSize(used)} used`));
  }
}

function focusHeading() {
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

// ---- sign in, register ---------------------------------------------------------------

function field(id, label, attributes = {}) {
  return h("p", { class: "field" }, h("label", { for: id }, label), h("input", { id, name: id, required: true, ...attributes }));
}

function renderSignIn() {
  topbar.hidden = true;
  const message = h("p", { class: "form-error", role: "alert" });
  const form = h("form", { class: "card narrow", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in to pcloud"),
    field("login", "Username or email", { autocomplete: "username", autocapitalize: "none" }),
    field("password", "Password", { type: "password", autocomplete: "current-password" }),
    message,
    h("p", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Sign in")),
    h("p", { class: "aside", id: "register-aside" }, "No account yet? ", h("a", { href: "#/register" }, "Create one")));
  // Only the admin makes accounts on a server whose registration is closed.
  serverFeatures().then((offered) => {
    if (offered.registration === false) form.querySelector("#register-aside").hidden = true;
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "";
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      await signIn(form.login.value.trim(), form.password.value);
      await loadMe();
      if (!location.hash.startsWith("#/files")) location.hash = "#/files/root";
      route();
    } catch (error) {
      message.textContent = describeError(error);
      button.disabled = false;
      form.password.select();
    }
  });
  clear(main, form);
  form.login.focus();
}

function renderRegister() {
  topbar.hidden = true;
  const message = h("p", { class: "form-error", role: "alert" });
  const form = h("form", { class: "card narrow", "aria-labelledby": "register-title" },
    h("h1", { id: "register-title" }, "Create your pcloud account"),
    field("username", "Username", { autocomplete: "username", autocapitalize: "none" }),
    field("email", "Email", { type: "email", autocomplete: "email" }),
    field("password", "Password", { type: "password", autocomplete: "new-password" }),
    message,
    h("p", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Create account")),
    h("p", { class: "aside" }, "Have an account? ", h("a", { href: "#/signin" }, "Sign in")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "";
    try {
      await register(form.username.value.trim(), form.email.value.trim(), form.password.value);
      await signIn(form.username.value.trim(), form.password.value);
      await loadMe();
      go("#/files/root");
    } catch (error) {
      message.textContent = describeError(error);
    }
  });
  clear(main, form);
  form.username.focus();
}

// ---- files ---------------------------------------------------------------------------

let refreshTimer = null;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => reloadFolder(), 300);
}

async function reloadFolder() {
  if (!state.data || !document.getElementById("files")) return;
  const { folderRef } = state.data;
  const data = new FolderData(folderRef, state.sort, state.order);
  try {
    await data.load();
  } catch (error) {
    toast(describeError(error), "error");
    return;
  }
  if (!state.data || state.data.folderRef !== folderRef) return;
  state.data = data;
  state.list.setCount(data.total);
  state.list.redraw();
  renderCount();
}

async function crumbsOf(folder) {
  folderNames.set(folder.id, folder);
  const chain = [folder];
  let current = folder;
  while (current.parent_id !== null && chain.length < 100) {
    let parent = folderNames.get(current.parent_id);
    if (!parent) {
      parent = (await api.listing(current.parent_id, { limit: 1 })).folder;
      folderNames.set(parent.id, parent);
    }
    chain.unshift(parent);
    current = parent;
  }
  return chain;
}

function renderCrumbs(chain) {
  const items = chain.map((folder, index) => {
    const name = folder.parent_id === null ? "Files" : folder.name;
    const last = index === chain.length - 1;
    return h("li", {}, last
      ? h("span", { "aria-current": "page" }, name)
      : h("a", { href: `#/files/${folder.parent_id === null ? "root" : folder.id}` }, name));
  });
  return h("nav", { class: "crumbs", "aria-label": "Folder path" }, h("ol", {}, items));
}

async function renderFiles(folderRef) {
  state.selection.clear();
  if (state.list) state.list.destroy();
  state.list = null;
  const data = new FolderData(folderRef, state.sort, state.order);
  state.data = data;
  try {
    await data.load();
  } catch (error) {
    if (error instanceof ApiError && error.status === 404 && folderRef !== "root") {
      toast("That folder is not there any more", "error");
      return go("#/files/root");
    }
    clear(main, h("p", { class: "notice" }, describeError(error)));
    return;
  }
  if (state.data !== data) return;
  const chain = await crumbsOf(data.folder).catch(() => [data.folder]);
  const scroller = h("div", { class: `scroller ${state.mode}`, id: "files" });
  const heading = h("h1", { class: "visually-hidden" }, data.folder.parent_id === null ? "Files" : data.folder.name);
  clear(main, heading, renderCrumbs(chain), toolbar(), selectionBar(), columnHeader(), scroller,
    h("p", { class: "count", id: "count", "aria-live": "polite" }), uploadPanel());
  renderCount();
  renderUploads();
  makeList(scroller);
  setupDrop(main);
  focusHeading();
}

function makeList(scroller) {
  const grid = state.mode === "grid";
  state.list = new VirtualList(scroller, {
    rowHeight: grid ? 188 : 52,
    cellWidth: grid ? 168 : 0,
    label: "Files and folders",
    renderItem: (index) => entryElement(state.data?.entries[index], index),
    need: (start, end) => {
      const data = state.data;
      if (!data) return;
      let missing = false; // (a loop: some() and slice() skip the holes of unread pages)
      for (let index = start; index < end && !missing; index += 1) missing = !data.entries[index];
      if (missing) data.ensure(start, end).then(() => state.data === data && state.list.redraw()).catch(() => {});
    },
  });
  state.list.setCount(state.data.total);
  scroller.addEventListener("keydown", onListKey);
}

function onListKey(event) {
  const item = event.target.closest("[data-index]");
  if (!item || !state.list) return;
  const index = Number(item.dataset.index);
  const step = state.mode === "grid" ? { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -state.list.perRow, ArrowDown: state.list.perRow }
    : { ArrowUp: -1, ArrowDown: 1 };
  const jumps = { Home: -index, End: state.list.count - 1 - index, PageDown: 10, PageUp: -10 };
  const delta = step[event.key] ?? jumps[event.key];
  if (delta !== undefined) {
    event.preventDefault();
    state.list.focus(Math.max(0, Math.min(state.list.count - 1, index + delta)));
  } else if (event.key === "Delete") {
    const entry = state.data.entries[index];
    if (entry) trashEntries([entry]);
  }
}

function renderCount() {
  const box = document.getElementById("count");
  if (!box || !state.data) return;
  const total = state.data.total;
  box.textContent = total === 0 ? "This folder is empty. Drop files here or use Upload." : `${total} item${total === 1 ? "" : "s"}`;
}

function entryElement(entry, index) {
  if (!entry) return h("div", { class: "entry placeholder" }, h("span", { class: "name" }, "…"));
  const selected = state.selection.has(keyOf(entry));
  const checkbox = h("input", {
    type: "checkbox",
    class: "select",
    checked: selected,
    "aria-label": `Select ${entry.name}`,
    onchange: (event) => toggle(entry, event.target.checked),
  });
  const kind = entry.type === "folder" ? "folder" : entry.file_type;
  const visual = state.mode === "grid" ? thumbnail(entry, kind) : icon(kind);
  const open = h("button", { type: "button", class: "open", onclick: () => openEntry(entry, index) }, visual, h("span", { class: "name" }, entry.name));
  const meta = h("span", { class: "meta" },
    h("span", { class: "size" }, entry.type === "folder" ? "Folder" : formatSize(entry.size)),
    h("span", { class: "date" }, formatDate(entry.modified_at)));
  const element = h("div", { class: `entry${selected ? " selected" : ""}`, title: entry.name }, checkbox, open, meta);
  if (entry.type === "folder") {
    element.addEventListener("dragover", (event) => {
      if (event.dataTransfer.types.includes("application/x-pcloud-entries")) {
        event.preventDefault();
        element.classList.add("drop-target");
      }
    });
    element.addEventListener("dragleave", () => element.classList.remove("drop-target"));
    element.addEventListener("drop", (event) => {
      element.classList.remove("drop-target");
      if (!event.dataTransfer.types.includes("application/x-pcloud-entries")) return;
      event.preventDefault();
      event.stopPropagation();
      moveEntries(draggedEntries(entry), entry.id);
    });
  }
  element.draggable = true;
  element.addEventListener("dragstart", (event) => {
    if (!state.selection.has(keyOf(entry))) {
      state.selection.clear();
      toggle(entry, true);
    }
    event.dataTransfer.setData("application/x-pcloud-entries", "1");
    event.dataTransfer.effectAllowed = "move";
  });
  return element;
}

function draggedEntries(target) {
  return [...state.selection.values()].filter((entry) => keyOf(entry) !== keyOf(target));
}

function thumbnail(entry, kind) {
  if (entry.type !== "file" || (kind !== "image" && kind !== "video")) return h("span", { class: "thumb" }, icon(kind));
  const box = h("span", { class: "thumb" }, icon(kind));
  const known = thumbnails.get(entry.id);
  if (known === null) return box;
  if (known) {
    clear(box, h("img", { src: known, alt: "", loading: "lazy" }));
    return box;
  }
  if (thumbnailsMissing) return box;
  authorizedFetch(`/api/v1/files/${entry.id}/thumbnail?size=256`).then(async (response) => {
    if (!response.ok) {
      thumbnails.set(entry.id, null);
      // The router's own 404 ("Not found"): this server has no thumbnails; stop asking.
      if (response.status === 404 && (await response.json().catch(() => ({}))).error === "Not found") {
        thumbnailsMissing = true;
      }
      return;
    }
    const url = URL.createObjectURL(await response.blob());
    thumbnails.set(entry.id, url);
    if (thumbnails.size > THUMBNAILS_KEPT) {
      const [oldest, oldUrl] = thumbnails.entries().next().value;
      thumbnails.delete(oldest);
      if (oldUrl) URL.revokeObjectURL(oldUrl);
    }
    if (box.isConnected) clear(box, h("img", { src: url, alt: "" }));
  }).catch(() => thumbnails.set(entry.id, null));
  return box;
}

function toggle(entry, on) {
  if (on) state.selection.set(keyOf(entry), entry);
  else state.selection.delete(keyOf(entry));
  renderSelectionBar();
  if (state.list) state.list.redraw();
}

function toolbar() {
  const filesInput = h("input", { type: "file", multiple: true, id: "pick-files", class: "visually-hidden", tabindex: -1, "aria-label": "Files to upload" });
  const folderInput = h("input", { type: "file", multiple: true, webkitdirectory: true, id: "pick-folder", class: "visually-hidden", tabindex: -1, "aria-label": "Folder to upload" });
  filesInput.addEventListener("change", () => {
    queuePicked([...filesInput.files].map((file) => ({ file, path: "" })));
    filesInput.value = "";
  });
  folderInput.addEventListener("change", () => {
    queuePicked([...folderInput.files].map((file) => ({ file, path: folderOf(file.webkitRelativePath) })));
    folderInput.value = "";
  });
  // "Date taken" once the server knows photos' dates (its entries then carry taken_at).
  const sample = state.data.entries.find((entry) => entry && entry.type === "file");
  const sorts = sample && "taken_at" in sample ? [...SORTS, ["taken_at", "Date taken"]] : SORTS;
  const sortSelect = h("select", { id: "sort", onchange: (event) => changeSort(event.target.value) },
    sorts.flatMap(([key, label]) => [
      h("option", { value: `${key}:asc`, selected: state.sort === key && state.order === "asc" }, `${label} ↑`),
      h("option", { value: `${key}:desc`, selected: state.sort === key && state.order === "desc" }, `${label} ↓`),
    ]));
  return h("div", { class: "toolbar", role: "toolbar", "aria-label": "Folder actions" },
    h("button", { type: "button", class: "primary", onclick: () => filesInput.click() }, "Upload files"),
    h("button", { type: "button", onclick: () => folderInput.click() }, "Upload folder"),
    h("button", { type: "button", onclick: newFolder }, "New folder"),
    h("a", { class: "button", href: zipUrl(state.data.folder.id), download: "" }, "Download all"),
    h("span", { class: "spacer" }),
    h("label", { for: "sort", class: "inline-label" }, "Sort"), sortSelect,
    h("button", {
      type: "button",
      "aria-pressed": String(state.mode === "grid"),
      onclick: () => switchMode(),
    }, "Photo grid"),
    filesInput, folderInput);
}

function folderOf(relativePath) {
  const cut = relativePath.lastIndexOf("/");
  return cut < 0 ? "" : relativePath.slice(0, cut);
}

function changeSort(value) {
  const [sort, order] = value.split(":");
  state.sort = sort;
  state.order = order;
  reloadFolder();
}

function switchMode() {
  state.mode = state.mode === "grid" ? "list" : "grid";
  localStorage.setItem("pcloud-view", state.mode);
  route();
}

function columnHeader() {
  return h("div", { class: "columns", "aria-hidden": "true" }, h("span", {}, ""), h("span", {}, "Name"), h("span", {}, "Size"), h("span", {}, "Modified"));
}

function selectionBar() {
  return h("div", { class: "selectionbar", id: "selectionbar", role: "toolbar", "aria-label": "Selected items", hidden: true });
}

function renderSelectionBar() {
  const bar = document.getElementById("selectionbar");
  if (!bar) return;
  const chosen = [...state.selection.values()];
  bar.hidden = chosen.length === 0;
  if (!chosen.length) return clear(bar);
  const one = chosen.length === 1 ? chosen[0] : null;
  clear(bar,
    h("span", { class: "chosen" }, `${chosen.length} selected`),
    h("button", { type: "button", onclick: () => chosen.forEach(download) }, "Download"),
    one && h("button", { type: "button", onclick: () => renameEntry(one) }, "Rename"),
    h("button", { type: "button", onclick: () => pickFolder("Move to", (target) => moveEntries(chosen, target)) }, "Move"),
    h("button", { type: "button", onclick: () => pickFolder("Copy to", (target) => copyEntries(chosen, target)) }, "Copy"),
    one && h("button", { type: "button", onclick: () => shareEntry(one) }, "Share link"),
    h("button", { type: "button", class: "danger", onclick: () => trashEntries(chosen) }, "Delete"),
    h("button", { type: "button", onclick: () => { state.selection.clear(); renderSelectionBar(); state.list.redraw(); } }, "Clear selection"));
}

function openEntry(entry, index) {
  if (entry.type === "folder") return go(`#/files/${entry.id}`);
  if (entry.file_type === "image" || entry.file_type === "video") return view(index);
  return download(entry);
}

function download(entry) {
  const link = h("a", { href: entry.type === "folder" ? zipUrl(entry.id) : contentUrl(entry.id), download: entry.type === "folder" ? `${entry.name}.zip` : entry.name });
  document.body.append(link);
  link.click();
  link.remove();
}

async function view(index) {
  const entries = state.data.entries;
  const media = (i) => entries[i] && (entries[i].file_type === "image" || entries[i].file_type === "video");
  let current = index;
  const stage = h("div", { class: "stage" });
  const caption = h("p", { class: "caption" });
  const show = () => {
    const entry = entries[current];
    caption.textContent = entry.name;
    clear(stage, entry.file_type === "video"
      ? h("video", { src: contentUrl(entry.id), controls: true, autoplay: true, preload: "metadata", "aria-label": entry.name })
      : h("img", { src: contentUrl(entry.id), alt: entry.name }));
  };
  const step = (delta) => {
    for (let i = current + delta; i >= 0 && i < entries.length; i += delta) {
      if (media(i)) {
        current = i;
        return show();
      }
    }
  };
  show();
  const body = h("div", { class: "viewer" }, stage, caption,
    h("p", { class: "actions" },
      h("button", { type: "button", onclick: () => step(-1) }, "Previous"),
      h("button", { type: "button", onclick: () => step(1) }, "Next"),
      h("button", { type: "button", onclick: () => download(entries[current]) }, "Download")));
  body.addEventListener("keydown", (event) => {
    if (event.key === "ArrowLeft") step(-1);
    if (event.key === "ArrowRight") step(1);
  });
  await dialog("View", body, [{ label: "Close", value: true, primary: true }]);
  state.list?.focus(current);
}

async function newFolder() {
  const name = await askText("New folder", "Folder name");
  if (!name) return;
  await attempt(() => api.createFolder(state.data.folder.id, name), `Made the folder ${name}`);
  reloadFolder();
}

async function renameEntry(entry) {
  const name = await askText(`Rename ${entry.type}`, "New name", entry.name);
  if (!name || name === entry.name) return;
  const done = await attempt(() => api.update(entry, { name }), "Renamed");
  if (done) {
    state.selection.clear();
    renderSelectionBar();
    reloadFolder();
  }
}

async function moveEntries(chosen, targetId) {
  if (!chosen.length) return;
  let moved = 0;
  for (const entry of chosen) {
    const changes = entry.type === "folder" ? { parent_id: targetId } : { folder_id: targetId };
    if (await attempt(() => api.update(entry, changes))) moved += 1;
  }
  if (moved) toast(`Moved ${moved} item${moved === 1 ? "" : "s"}`);
  state.selection.clear();
  renderSelectionBar();
  reloadFolder();
}

async function copyEntries(chosen, targetId) {
  let copied = 0;
  for (const entry of chosen) if (await attempt(() => api.copy(entry, targetId))) copied += 1;
  if (copied) toast(`Copied ${copied} item${copied === 1 ? "" : "s"}`);
  state.selection.clear();
  renderSelectionBar();
  reloadFolder();
  updateQuota();
}

async function trashEntries(chosen) {
  const what = chosen.length === 1 ? chosen[0].name : `${chosen.length} items`;
  if (!(await confirmAction("Move to the trash?", `${what} will go to the trash. You can restore it from there.`, "Move to trash"))) return;
  let trashed = 0;
  for (const entry of chosen) if (await attempt(() => api.trash(entry))) trashed += 1;
  if (trashed) toast(`Moved ${trashed} item${trashed === 1 ? "" : "s"} to the trash`);
  state.selection.clear();
  renderSelectionBar();
  reloadFolder();
}

/** A share link (POST /api/v1/shares, when the server has share links): copy or revoke. */
async function shareEntry(entry) {
  const made = await authorizedFetch("/api/v1/shares", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(entry.type === "folder" ? { folder_id: entry.id } : { file_id: entry.id }),
  }).catch(() => null);
  if (!made || made.status === 404 || made.status === 405) {
    return toast("Share links are not available on this server yet", "error");
  }
  const answer = await made.json().catch(() => ({}));
  if (!made.ok) return toast(answer.error || "Could not make a share link", "error");
  const link = new URL(answer.url || answer.path, location.href).href;
  const input = h("input", { id: "share-link", value: link, readonly: true });
  const choice = await dialog(`Share ${entry.name}`, h("p", {}, h("label", { for: "share-link" }, "Anyone with this link can see it"), input), [
    { label: "Revoke link", value: "revoke", danger: true },
    { label: "Done", value: null },
    { label: "Copy link", value: "copy", primary: true },
  ]);
  if (choice === "copy") {
    await navigator.clipboard.writeText(link).then(() => toast("Link copied"), () => toast("Select the link and copy it", "error"));
  } else if (choice === "revoke") {
    await attempt(() => call("DELETE", `/api/v1/shares/${answer.id}`), "The link no longer works");
  }
}

async function pickFolder(title, use) {
  let currentId = state.data.folder.id;
  const list = h("ul", { class: "picker" });
  const where = h("p", { class: "where" });
  const show = async (folderRef) => {
    const page = await api.listing(folderRef, { limit: 10000 });
    currentId = page.folder.id;
    where.textContent = `In: ${page.folder.parent_id === null ? "Files" : page.folder.name}`;
    const folders = page.entries.filter((entry) => entry.type === "folder" && !state.selection.has(keyOf(entry)));
    clear(list,
      page.folder.parent_id !== null && h("li", {}, h("button", { type: "button", onclick: () => attempt(() => show(page.folder.parent_id)) }, "↑ Up")),
      folders.map((folder) => h("li", {}, h("button", { type: "button", onclick: () => attempt(() => show(folder.id)) }, icon("folder"), folder.name))));
  };
  if ((await attempt(() => show(currentId).then(() => true))) !== true) return;
  const choice = await dialog(title, h("div", {}, where, list), [
    { label: "Cancel", value: null },
    { label: `${title.split(" ")[0]} here`, value: () => currentId, primary: true },
  ]);
  if (choice !== null) use(choice);
}

// ---- uploads -------------------------------------------------------------------------

function queuePicked(picked) {
  if (!picked.length || !state.data) return;
  uploads.add(picked, state.data.folder.id, state.data.knownFiles());
}

function setupDrop(area) {
  if (area.dataset.dropReady) return;
  area.dataset.dropReady = "1";
  area.addEventListener("dragover", (event) => {
    if (event.dataTransfer.types.includes("Files") && document.getElementById("files")) {
      event.preventDefault();
      area.classList.add("dropping");
    }
  });
  area.addEventListener("dragleave", (event) => {
    if (event.target === area) area.classList.remove("dropping");
  });
  area.addEventListener("drop", async (event) => {
    area.classList.remove("dropping");
    if (!event.dataTransfer.types.includes("Files") || !document.getElementById("files")) return;
    event.preventDefault();
    // Entries, which folders need; a browser without them (or a drop made by a script)
    // still gives the files themselves. Both read before the first await: the drop's
    // items are gone once its handler yields.
    const dropped = [...event.dataTransfer.items]
      .filter((item) => item.kind === "file")
      .map((item) => (item.webkitGetAsEntry && item.webkitGetAsEntry()) || item.getAsFile())
      .filter(Boolean);
    const picked = [];
    for (const one of dropped) {
      if (one instanceof File) picked.push({ file: one, path: "" });
      else await collect(one, "", picked);
    }
    queuePicked(picked);
  });
}

async function collect(entry, path, picked) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    picked.push({ file, path });
    return;
  }
  const reader = entry.createReader();
  const below = path ? `${path}/${entry.name}` : entry.name;
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    for (const child of batch) await collect(child, below, picked);
  }
}

function uploadPanel() {
  return h("section", { class: "uploads", id: "uploads", "aria-label": "Uploads", hidden: true });
}

const STATE_TEXT = { queued: "Waiting", checking: "Checking", uploading: "Uploading", paused: "Paused", done: "Done", failed: "Failed", skipped: "Skipped" };
let uploadsDrawScheduled = false;
let uploadsExpanded = null; // null: open while busy, shut when all are done

function renderUploads() {
  if (uploadsDrawScheduled) return;
  uploadsDrawScheduled = true;
  requestAnimationFrame(() => {
    uploadsDrawScheduled = false;
    drawUploads();
  });
}

function drawUploads() {
  const panel = document.getElementById("uploads");
  if (!panel) return;
  const saved = unfinishedUploads().filter((s) => !uploads.items.some((item) => item.key === s.key && item.state !== "failed"));
  panel.hidden = uploads.items.length === 0 && saved.length === 0;
  if (panel.hidden) return;
  const { size, sent } = uploads.totals;
  const busy = uploads.items.some((item) => ["queued", "uploading", "checking"].includes(item.state));
  const shown = uploads.items.slice(-50);
  const expanded = uploadsExpanded ?? (busy || saved.length > 0 || uploads.items.some((item) => item.state === "failed" || item.state === "paused"));
  panel.classList.toggle("collapsed", !expanded);
  clear(panel,
    h("div", { class: "uploads-head" },
      h("h2", {}, busy ? "Uploading" : "Uploads"),
      h("progress", { max: size || 1, value: sent, "aria-label": "All uploads", id: "upload-total" }),
      h("span", { class: "total-text" }, `${formatSize(sent)} of ${formatSize(size)}`),
      h("button", { type: "button", "aria-expanded": String(expanded), onclick: () => { uploadsExpanded = !expanded; renderUploads(); } }, expanded ? "Hide" : "Show"),
      !busy && h("button", { type: "button", onclick: () => { uploadsExpanded = null; uploads.clearFinished(); } }, "Clear")),
    h("ul", { class: "upload-list" },
      shown.map((item) => h("li", { class: `upload ${item.state}`, dataset: { name: item.name } },
        h("span", { class: "name" }, item.path ? `${item.path}/${item.name}` : item.name),
        h("progress", { max: item.size || 1, value: item.sent, "aria-label": `Upload of ${item.name}` }),
        h("span", { class: "state" }, item.error || STATE_TEXT[item.state]),
        (item.state === "uploading" || item.state === "queued") && h("button", { type: "button", onclick: () => uploads.pause(item), "aria-label": `Pause ${item.name}` }, "Pause"),
        (item.state === "paused" || item.state === "failed") && item.error !== "Cancelled" && h("button", { type: "button", onclick: () => uploads.resume(item), "aria-label": `Resume ${item.name}` }, "Resume"),
        !["done", "skipped", "failed"].includes(item.state) && h("button", { type: "button", onclick: () => uploads.cancel(item), "aria-label": `Cancel ${item.name}` }, "Cancel")))),
    saved.length > 0 && h("div", { class: "unfinished" },
      h("p", {}, "Unfinished uploads from before: pick the same file again (into the same folder) to go on where it stopped."),
      h("ul", {}, saved.map((s) => h("li", {}, h("span", { class: "name" }, s.name), ` ${formatSize(s.size)} `,
        h("button", { type: "button", onclick: async () => { await forgetUpload(s); renderUploads(); } }, "Forget"))))));
}

// ---- trash ---------------------------------------------------------------------------

function leaveFiles() {
  state.data = null;
  state.selection.clear();
  if (state.list) state.list.destroy();
  state.list = null;
}

async function renderTrash() {
  leaveFiles();
  const body = h("div", { class: "trash" }, h("p", {}, "Loading…"));
  clear(main, h("div", { class: "page-head" }, h("h1", {}, "Trash"),
    h("button", { type: "button", class: "danger", onclick: emptyTrash }, "Empty trash")), body);
  focusHeading();
  const answer = await attempt(() => api.listTrash());
  if (!answer) return;
  if (!answer.entries.length) return clear(body, h("p", { class: "notice" }, "The trash is empty."));
  clear(body, h("ul", { class: "rows" }, answer.entries.map((entry) => h("li", { class: "row" },
    icon(entry.type === "folder" ? "folder" : entry.file_type),
    h("span", { class: "name" }, entry.name),
    h("span", { class: "meta" }, `${formatSize(entry.size)} · deleted ${formatDate(entry.trashed_at)}`),
    h("button", { type: "button", "aria-label": `Restore ${entry.name}`, onclick: async () => {
      if (await attempt(() => api.restore(entry), `Restored ${entry.name}`)) renderTrash();
    } }, "Restore")))));
}

async function emptyTrash() {
  if (!(await confirmAction("Empty the trash?", "Everything in the trash is deleted for good.", "Empty trash"))) return;
  if (await attempt(() => api.emptyTrash(), "The trash is empty")) {
    renderTrash();
    updateQuota();
  }
}

// ---- account -------------------------------------------------------------------------

async function renderAccount() {
  leaveFiles();
  const me = state.me;
  const sessionsBox = h("div", {}, h("p", {}, "Loading…"));
  const sharesBox = h("section", { class: "card", "aria-labelledby": "shares-title", hidden: true });
  const message = h("p", { class: "form-error", role: "alert" });
  const form = h("form", { class: "card", "aria-labelledby": "password-title" },
    h("h2", { id: "password-title" }, "Change password"),
    field("old-password", "Current password", { type: "password", autocomplete: "current-password" }),
    field("new-password", "New password", { type: "password", autocomplete: "new-password" }),
    field("repeat-password", "New password again", { type: "password", autocomplete: "new-password" }),
    message,
    h("p", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Change password")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "";
    if (form["new-password"].value !== form["repeat-password"].value) {
      message.textContent = "The new passwords are not the same";
      return;
    }
    try {
      const answer = await api.changePassword(form["old-password"].value, form["new-password"].value);
      form.reset();
      toast(`Password changed; ${answer.sessions_revoked} other device(s) signed out`);
      renderSessions(sessionsBox);
    } catch (error) {
      message.textContent = describeError(error);
    }
  });
  clear(main,
    h("div", { class: "page-head" }, h("h1", {}, "Account"),
      h("button", { type: "button", onclick: doSignOut }, "Sign out")),
    h("section", { class: "card", "aria-labelledby": "me-title" },
      h("h2", { id: "me-title" }, me.username),
      h("p", {}, me.email),
      h("p", {}, me.quota_bytes ? `${formatSize(me.usage_bytes)} of ${formatSize(me.quota_bytes)} used` : `${formatSize(me.usage_bytes)} used`)),
    me.has_password && form,
    sharesBox,
    h("section", { class: "card", "aria-labelledby": "sessions-title" },
      h("div", { class: "page-head" }, h("h2", { id: "sessions-title" }, "Signed-in devices"),
        h("button", { type: "button", onclick: async () => {
          if (!(await confirmAction("Sign out all other devices?", "Every other phone, computer and browser signed in to this account is signed out.", "Sign them out"))) return;
          const answer = await attempt(() => api.endOtherSessions());
          if (answer) toast(`${answer.revoked} device(s) signed out`);
          renderSessions(sessionsBox);
        } }, "Sign out all other devices")),
      sessionsBox));
  focusHeading();
  renderSessions(sessionsBox);
  renderShares(sharesBox);
}

/** The account's live share links, each with a way to revoke it (hidden on a server
 * without share links). */
async function renderShares(box) {
  const response = await authorizedFetch("/api/v1/shares").catch(() => null);
  if (!response || !response.ok) return;
  const live = (await response.json()).shares.filter((share) => share.state === "active");
  box.hidden = false;
  clear(box, h("h2", { id: "shares-title" }, "Share links"),
    live.length === 0 ? h("p", { class: "muted" }, "No links: select a file or folder and choose Share link.")
      : h("ul", { class: "rows" }, live.map((share) => h("li", { class: "row session" },
        h("span", { class: "name" }, share.name),
        h("span", { class: "meta" }, `${share.type} · made ${formatDate(share.created_at)} · ${share.downloads} download(s)${share.expires_at ? ` · until ${formatDate(share.expires_at)}` : ""}`),
        h("button", { type: "button", "aria-label": `Revoke the link to ${share.name}`, onclick: async () => {
          if (await attempt(() => call("DELETE", `/api/v1/shares/${share.id}`), "The link no longer works")) renderShares(box);
        } }, "Revoke")))));
}

async function renderSessions(box) {
  const answer = await attempt(() => api.sessions());
  if (!answer) return;
  clear(box, h("ul", { class: "rows" }, answer.sessions.map((session) => h("li", { class: "row session", dataset: { id: session.id } },
    h("span", { class: "name" }, session.device_name || session.user_agent || "Unknown device", session.current ? h("span", { class: "badge" }, "this device") : null),
    h("span", { class: "meta" }, `${session.ip_address || ""} · last seen ${formatDate(session.last_seen_at)} · since ${formatDate(session.created_at)}`),
    !session.current && h("button", { type: "button", "aria-label": `Sign out ${session.device_name || session.user_agent || "device"}`, onclick: async () => {
      if (await attempt(() => api.endSession(session.id), "Signed that device out")) renderSessions(box);
    } }, "Sign out")))));
}

async function doSignOut() {
  await signOut().catch(() => {});
  state.me = null;
  topbar.hidden = true;
  go("#/signin");
}

start().catch((error) => {
  clear(main, h("p", { class: "notice" }, describeError(error)));
});
