// Uploads: small files in one multipart request, large ones resumably over tus in
// pieces. An unfinished tus upload's URL (not a secret: it needs the access token) is
// remembered in localStorage under the file's fingerprint, so that after a reload the
// same file, picked again, goes on from where the server has it.

import { ApiError, api, authorization, refresh } from "./api.js";

export const SMALL_FILE = 8 * 1024 * 1024; // up to this: one ordinary request
const PIECE = 64 * 1024 * 1024; // a tus PATCH's body (the server allows 64 MiB by default)
const SMALLEST_PIECE = 256 * 1024; // a server with a lower TUS_MAX_CHUNK answers 413: halve
const HASH_LIMIT = 32 * 1024 * 1024; // hashed for the upload-check (the browser hashes in memory)
const STORE_PREFIX = "pcloud-upload:";
const MAX_WAIT = 10_000; // between attempts while the server is away, at most

function fingerprint(file, folderId) {
  return `${STORE_PREFIX}${folderId}:${file.size}:${file.lastModified}:${file.name}`;
}

/** Unfinished uploads remembered from earlier visits: [{key, name, size, folderId}]. */
export function unfinishedUploads() {
  const found = [];
  for (let index = 0; index < localStorage.length; index += 1) {
    const key = localStorage.key(index);
    if (!key || !key.startsWith(STORE_PREFIX)) continue;
    try {
      found.push({ key, ...JSON.parse(localStorage.getItem(key)) });
    } catch {
      localStorage.removeItem(key);
    }
  }
  return found;
}

export async function forgetUpload(saved) {
  localStorage.removeItem(saved.key);
  try {
    await tusRequest("DELETE", saved.url);
  } catch {
    // gone already, or the server will expire it
  }
}

function base64(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class PausedError extends Error {}

/** One XMLHttpRequest (fetch cannot report upload progress). */
function send(method, url, { headers = {}, body = null, onProgress, item } = {}) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open(method, url);
    for (const [name, value] of Object.entries({ ...headers, ...authorization() })) {
      request.setRequestHeader(name, value);
    }
    if (onProgress) request.upload.onprogress = (event) => onProgress(event.loaded);
    request.onload = () => resolve(request);
    request.onerror = () => reject(new TypeError("network error"));
    request.onabort = () => reject(new PausedError("paused"));
    if (item) item.request = request;
    request.send(body);
  });
}

async function tusRequest(method, url, headers = {}, options = {}) {
  const request = await send(method, url, {
    ...options,
    headers: { "Tus-Resumable": "1.0.0", ...headers },
  });
  return request;
}

function failure(request) {
  let message = `${request.status} ${request.statusText}`;
  try {
    message = JSON.parse(request.responseText).error || message;
  } catch {
    // not JSON
  }
  return new ApiError(request.status, message);
}

async function sha256Hex(file) {
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/**
 * A queue of uploads into folders. `onChange()` is called whenever an item's state or
 * progress changes; `onStored(item)` when one has become a file.
 */
export class UploadQueue {
  constructor({ onChange, onStored }) {
    this.items = [];
    this.onChange = onChange;
    this.onStored = onStored;
    this.running = 0;
    this.parallel = 2;
    this.piece = PIECE;
  }

  get totals() {
    let size = 0;
    let sent = 0;
    for (const item of this.items) {
      if (item.state === "skipped" || item.state === "failed") continue;
      size += item.size;
      sent += item.sent;
    }
    return { size, sent };
  }

  /**
   * Queue files for the folder `folderId`; each is {file, path}, where `path` is the
   * folder path below it ("" for none, "holiday/beach" for a file of a picked folder).
   */
  async add(picked, folderId, knownNames = new Set()) {
    const folderIds = new Map([["", folderId]]);
    const items = picked.map(({ file, path }) => ({
      file,
      path,
      name: file.name,
      size: file.size,
      sent: 0,
      state: "queued",
      error: null,
      folderId: null,
      request: null,
      key: null,
    }));
    this.items.push(...items);
    this.onChange();
    for (const item of items) {
      try {
        item.folderId = await this.folderFor(item.path, folderIds);
      } catch (error) {
        this.fail(item, error);
      }
    }
    await this.checkKnownContent(items.filter((item) => item.state === "queued"), folderId, knownNames);
    this.pump();
  }

  async folderFor(path, folderIds) {
    if (folderIds.has(path)) return folderIds.get(path);
    const cut = path.lastIndexOf("/");
    const parentId = await this.folderFor(cut < 0 ? "" : path.slice(0, cut), folderIds);
    const folder = await api.ensureFolder(parentId, path.slice(cut + 1));
    folderIds.set(path, folder.id);
    return folder.id;
  }

  /** The upload-check: small files whose content the user already has are not sent;
   * they are made from it (or skipped when the folder already holds them). A large file
   * is not hashed first (reading it twice would halve the upload's speed): it is skipped
   * when the folder holds a file of its name, size and modification time, as rsync and
   * rclone judge a file unchanged. */
  async checkKnownContent(items, topFolderId, knownNames) {
    for (const item of items) {
      if (item.size > HASH_LIMIT && item.folderId === topFolderId
          && knownNames.has(`${item.name}\n${item.size}\n${item.file.lastModified}`)) {
        item.state = "skipped";
        item.sent = item.size;
        item.error = "Already there (same size and time)";
      }
    }
    if (!globalThis.crypto || !crypto.subtle) return; // only in a secure context
    const hashed = [];
    for (const item of items) {
      if (item.state !== "queued" || item.size === 0 || item.size > HASH_LIMIT) continue;
      item.state = "checking";
      this.onChange();
      try {
        item.sha256 = await sha256Hex(item.file);
        hashed.push(item);
      } catch {
        // unreadable now: the upload will say so
      }
      item.state = "queued";
    }
    for (let start = 0; start < hashed.length; start += 1000) {
      const batch = hashed.slice(start, start + 1000);
      try {
        const { results } = await api.uploadCheck(batch.map((item) => item.sha256));
        const present = new Set(results.filter((r) => r.status === "present").map((r) => r.sha256));
        const wanted = [];
        for (const item of batch) {
          if (!present.has(item.sha256)) continue;
          if (item.folderId === topFolderId && knownNames.has(`${item.name}\n${item.sha256}`)) {
            item.state = "skipped";
            item.sent = item.size;
            item.error = "Already there";
          } else {
            wanted.push(item);
          }
        }
        if (wanted.length) {
          const answer = await api.fromContent(
            wanted.map((item) => ({
              sha256: item.sha256,
              name: item.name,
              folder_id: item.folderId,
              modified_at: item.file.lastModified,
            })),
          );
          answer.results.forEach((result, index) => {
            if (result.status === 201) {
              const item = wanted[index];
              item.state = "done";
              item.sent = item.size;
              item.error = "Already on the server: not sent again";
              this.onStored(item, result.file);
            }
          });
        }
      } catch {
        // the check is an optimisation: on any trouble, upload as usual
      }
    }
    this.onChange();
  }

  pump() {
    while (this.running < this.parallel) {
      const item = this.items.find((each) => each.state === "queued");
      if (!item) return;
      this.running += 1;
      item.state = "uploading";
      this.onChange();
      this.upload(item).finally(() => {
        this.running -= 1;
        this.pump();
      });
    }
  }

  async upload(item) {
    try {
      const entry = item.size <= SMALL_FILE ? await this.sendWhole(item) : await this.sendResumably(item);
      item.state = "done";
      item.sent = item.size;
      this.onChange();
      this.onStored(item, entry);
    } catch (error) {
      if (error instanceof PausedError) {
        if (item.state !== "failed") item.state = "paused"; // (cancelled: stays so)
        this.onChange();
      } else {
        this.fail(item, error);
      }
    } finally {
      item.request = null;
    }
  }

  fail(item, error) {
    item.state = "failed";
    item.error = error.message || String(error);
    this.onChange();
  }

  /** Stop an upload where it is (a request under way is broken off; the server keeps
   * what arrived of a tus piece). */
  pause(item) {
    if (["queued", "checking", "uploading"].includes(item.state)) item.state = "paused";
    if (item.request) item.request.abort();
    this.onChange();
  }

  resume(item) {
    if (item.state !== "paused" && item.state !== "failed") return;
    item.state = "queued";
    item.error = null;
    this.onChange();
    this.pump();
  }

  cancel(item) {
    this.pause(item);
    item.state = "failed";
    item.error = "Cancelled";
    if (item.key) {
      const saved = localStorage.getItem(item.key);
      if (saved) forgetUpload({ key: item.key, ...JSON.parse(saved) });
    }
    this.onChange();
  }

  clearFinished() {
    this.items = this.items.filter((item) => !["done", "skipped", "failed"].includes(item.state));
    this.onChange();
  }

  async sendWhole(item) {
    for (let attempt = 0; ; attempt += 1) {
      const form = new FormData();
      form.append("modified_at", String(item.file.lastModified));
      form.append("file", item.file, item.name);
      let request;
      try {
        request = await send("POST", `/api/v1/folders/${item.folderId}/files?on_conflict=rename`, {
          body: form,
          item,
          onProgress: (loaded) => this.progress(item, Math.min(loaded, item.size)),
        });
      } catch (error) {
        if (error instanceof PausedError || attempt >= 5) throw error;
        await this.waitForServer(item, attempt);
        continue;
      }
      if (request.status === 401 && attempt === 0 && (await refresh())) continue;
      if (request.status !== 201) throw failure(request);
      return JSON.parse(request.responseText);
    }
  }

  progress(item, sent) {
    item.sent = sent;
    this.onChange();
  }

  async waitForServer(item, attempt) {
    item.error = "Connection lost: trying again…";
    this.onChange();
    await sleep(Math.min(MAX_WAIT, 500 * 2 ** attempt));
    item.error = null;
    if (item.state !== "uploading") throw new PausedError("paused");
  }

  async sendResumably(item) {
    item.key = fingerprint(item.file, item.folderId);
    let url = null;
    let offset = 0;
    const saved = localStorage.getItem(item.key);
    if (saved) {
      try {
        url = JSON.parse(saved).url;
        offset = await this.serverOffset(item, url);
      } catch (error) {
        if (error instanceof PausedError) throw error;
        url = null; // expired or gone: start again
      }
    }
    if (url === null) url = await this.create(item);
    let attempt = 0;
    let stored = null;
    while (offset < item.size) {
      const end = Math.min(item.size, offset + this.piece);
      let request;
      try {
        request = await tusRequest(
          "PATCH",
          url,
          { "Upload-Offset": String(offset), "Content-Type": "application/offset+octet-stream" },
          { body: item.file.slice(offset, end), item, onProgress: (loaded) => this.progress(item, offset + loaded) },
        );
      } catch (error) {
        if (error instanceof PausedError) throw error;
        offset = await this.reconnect(item, url, attempt);
        attempt += 1;
        continue;
      }
      if (request.status === 401 && (await refresh())) continue;
      if (request.status === 413 && this.piece > SMALLEST_PIECE) {
        this.piece = Math.max(SMALLEST_PIECE, Math.floor(this.piece / 2));
        offset = await this.serverOffset(item, url);
        continue;
      }
      if (request.status === 409 || request.status === 423 || request.status === 460) {
        offset = await this.serverOffset(item, url);
        continue;
      }
      if (request.status >= 500 || request.status === 0) {
        offset = await this.reconnect(item, url, attempt);
        attempt += 1;
        continue;
      }
      if (request.status !== 204) throw failure(request);
      attempt = 0;
      offset = Number(request.getResponseHeader("Upload-Offset"));
      stored = request.getResponseHeader("Pcloud-File");
      this.progress(item, offset);
      if (item.state !== "uploading" && offset < item.size) throw new PausedError("paused");
    }
    localStorage.removeItem(item.key);
    return stored === null ? null : { name: decodeURIComponent(stored) };
  }

  /** After a broken request: wait for the server to answer again, and its offset. */
  async reconnect(item, url, attempt) {
    for (let tries = attempt; ; tries += 1) {
      await this.waitForServer(item, tries);
      try {
        return await this.serverOffset(item, url);
      } catch (error) {
        if (error instanceof PausedError) throw error;
        if (error instanceof ApiError && error.status !== 0 && error.status < 500) throw error;
      }
    }
  }

  async serverOffset(item, url) {
    for (let attempt = 0; ; attempt += 1) {
      const request = await tusRequest("HEAD", url, {}, { item });
      if (request.status === 401 && attempt === 0 && (await refresh())) continue;
      if (request.status !== 200) throw failure(request);
      const offset = Number(request.getResponseHeader("Upload-Offset"));
      this.progress(item, offset);
      return offset;
    }
  }

  async create(item) {
    const metadata = [
      `filename ${base64(item.name)}`,
      `folder_id ${base64(String(item.folderId))}`,
      `modified_at ${base64(String(item.file.lastModified))}`,
    ].join(",");
    for (let attempt = 0; ; attempt += 1) {
      let request;
      try {
        request = await tusRequest("POST", "/tus/", { "Upload-Length": String(item.size), "Upload-Metadata": metadata }, { item });
      } catch (error) {
        if (error instanceof PausedError) throw error;
        await this.waitForServer(item, attempt);
        continue;
      }
      if (request.status === 401 && attempt === 0 && (await refresh())) continue;
      if (request.status !== 201) throw failure(request);
      const url = new URL(request.getResponseHeader("Location"), location.href).pathname;
      localStorage.setItem(
        item.key,
        JSON.stringify({ url, name: item.name, size: item.size, folderId: item.folderId, savedAt: Date.now() }),
      );
      return url;
    }
  }
}
