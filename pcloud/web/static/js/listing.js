// A folder's entries, read in pages as they are scrolled to, and a list that draws only
// the rows in view: a folder of 100,000 files costs the page a few dozen elements.

import { api } from "./api.js";

const PAGE = 1000;

/** The entries of one folder in one order, fetched a page at a time. */
export class FolderData {
  constructor(folderRef, sort, order) {
    this.folderRef = folderRef;
    this.sort = sort;
    this.order = order;
    this.entries = [];
    this.total = 0;
    this.folder = null;
    this.pages = new Map(); // page number -> promise
  }

  async load() {
    await this.page(0);
    return this;
  }

  page(number) {
    if (!this.pages.has(number)) {
      const promise = api
        .listing(this.folderRef, { offset: number * PAGE, limit: PAGE, sort: this.sort, order: this.order })
        .then((answer) => {
          this.folder = answer.folder;
          this.total = answer.total;
          this.entries.length = Math.max(this.entries.length, answer.total);
          answer.entries.forEach((entry, index) => {
            this.entries[number * PAGE + index] = entry;
          });
        })
        .catch((error) => {
          this.pages.delete(number);
          throw error;
        });
      this.pages.set(number, promise);
    }
    return this.pages.get(number);
  }

  /** Make sure entries start..end are here (resolves when they are). */
  ensure(start, end) {
    const wanted = [];
    for (let number = Math.floor(start / PAGE); number <= Math.floor(Math.max(start, end - 1) / PAGE); number += 1) {
      if (number * PAGE < Math.max(this.total, 1)) wanted.push(this.page(number));
    }
    return Promise.all(wanted);
  }

  /** Every file loaded so far, as "name\nsha256" and as "name\nsize\nmodified ms" (for
   * the upload-check, which hashes only small files). */
  knownFiles() {
    const known = new Set();
    for (const entry of this.entries) {
      if (!entry || entry.type !== "file") continue;
      known.add(`${entry.name}\n${entry.sha256}`);
      known.add(`${entry.name}\n${entry.size}\n${Date.parse(entry.modified_at)}`);
    }
    return known;
  }
}

/**
 * Rows in a scrolling box, drawn only where they show. `renderItem(index)` makes the
 * element for item `index` (or a placeholder while it loads); `need(start, end)` is
 * asked for items not yet loaded. In grid mode each row holds as many cells as fit.
 */
export class VirtualList {
  constructor(scroller, { rowHeight, cellWidth = 0, renderItem, need, label }) {
    this.scroller = scroller;
    this.rowHeight = rowHeight;
    this.cellWidth = cellWidth;
    this.renderItem = renderItem;
    this.need = need;
    this.count = 0;
    this.spacer = document.createElement("div");
    this.spacer.className = "vlist-spacer";
    this.window = document.createElement("div");
    this.window.className = "vlist-window";
    this.window.setAttribute("role", "list");
    this.window.setAttribute("aria-label", label);
    this.spacer.append(this.window);
    scroller.replaceChildren(this.spacer);
    this.drawn = "";
    this.scheduled = false;
    scroller.addEventListener("scroll", () => this.schedule(), { passive: true });
    this.resizeObserver = new ResizeObserver(() => this.schedule(true));
    this.resizeObserver.observe(scroller);
  }

  get perRow() {
    if (!this.cellWidth) return 1;
    return Math.max(1, Math.floor(this.scroller.clientWidth / this.cellWidth));
  }

  setCount(count) {
    this.count = count;
    this.schedule(true);
  }

  schedule(force = false) {
    if (force) this.drawn = "";
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.draw();
    });
  }

  redraw() {
    this.drawn = "";
    this.draw();
  }

  draw() {
    const perRow = this.perRow;
    const rows = Math.ceil(this.count / perRow);
    this.spacer.style.height = `${rows * this.rowHeight}px`;
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight || 600;
    const firstRow = Math.max(0, Math.floor(top / this.rowHeight) - 4);
    const lastRow = Math.min(rows, Math.ceil((top + height) / this.rowHeight) + 4);
    const first = firstRow * perRow;
    const last = Math.min(this.count, lastRow * perRow);
    const key = `${first}:${last}:${perRow}`;
    if (key === this.drawn) return;
    const focusedIndex = this.window.contains(document.activeElement)
      ? document.activeElement.closest("[data-index]")?.dataset.index
      : undefined;
    this.drawn = key;
    this.window.style.transform = `translateY(${firstRow * this.rowHeight}px)`;
    this.window.style.setProperty("--per-row", perRow);
    const items = [];
    for (let index = first; index < last; index += 1) {
      const item = this.renderItem(index);
      item.dataset.index = index;
      item.setAttribute("role", "listitem");
      item.setAttribute("aria-setsize", this.count);
      item.setAttribute("aria-posinset", index + 1);
      items.push(item);
    }
    this.window.replaceChildren(...items);
    if (focusedIndex !== undefined) this.focus(Number(focusedIndex), false);
    if (last > first) this.need(first, last);
  }

  /** Scroll item `index` into view and focus its first control. */
  focus(index, scroll = true) {
    if (index < 0 || index >= this.count) return;
    if (scroll) {
      const row = Math.floor(index / this.perRow);
      const top = row * this.rowHeight;
      const scroller = this.scroller;
      if (top < scroller.scrollTop) scroller.scrollTop = top;
      else if (top + this.rowHeight > scroller.scrollTop + scroller.clientHeight) {
        scroller.scrollTop = top + this.rowHeight - scroller.clientHeight;
      }
      this.redraw();
    }
    const item = this.window.querySelector(`[data-index="${index}"] .open`);
    if (item) item.focus({ preventScroll: true });
  }

  destroy() {
    this.resizeObserver.disconnect();
    this.count = 0;
    this.draw = () => {}; // a frame already asked for draws nothing
  }
}
