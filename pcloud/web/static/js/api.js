// The API as the page uses it. The access token lives only in this module's memory;
// the refresh token is an HttpOnly cookie the browser sends to /api/v1/web/session
// alone, so no script (ours or an injected one) can read it.

const SESSION = "/api/v1/web/session";
const WEB_HEADER = { "Pcloud-Web": "1" };
let accessToken = null;
let refreshTimer = null;
let refreshing = null;
const listeners = new Set();

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** Call `listener(signedIn)` whenever the page signs in or out. */
export function onSessionChange(listener) {
  listeners.add(listener);
}

function setToken(token, expiresIn) {
  accessToken = token;
  clearTimeout(refreshTimer);
  if (token) {
    // Ask for a new one well before this one ends (and so renew the content cookie).
    const seconds = Math.max(30, (expiresIn || 3600) * 0.8);
    refreshTimer = setTimeout(() => refresh().catch(() => {}), seconds * 1000);
  }
  for (const listener of listeners) listener(Boolean(token));
}

export function signedIn() {
  return accessToken !== null;
}

export function authorization() {
  return accessToken ? { Authorization: `Bearer ${accessToken}` } : {};
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const message = (body && (body.error || body.message)) || `${response.status} ${response.statusText}`;
  return new ApiError(response.status, message, body);
}

async function sessionCall(method, path, body) {
  const response = await fetch(SESSION + path, {
    method,
    credentials: "same-origin",
    headers: { ...WEB_HEADER, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

export async function signIn(loginIdentifier, password) {
  const answer = await sessionCall("POST", "", { login_identifier: loginIdentifier, password });
  setToken(answer.access_token, answer.expires_in);
}

/** A new access token from the cookie; false when there is no live session. */
export function refresh() {
  if (!refreshing) {
    refreshing = sessionCall("POST", "/refresh")
      .then((answer) => {
        setToken(answer.access_token, answer.expires_in);
        return true;
      })
      .catch((error) => {
        if (error.status === 401 || error.status === 403) {
          setToken(null);
          return false;
        }
        throw error;
      })
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

export async function signOut() {
  try {
    await sessionCall("DELETE", "");
  } finally {
    setToken(null);
  }
}

let features = null;

/** What the server offers before sign-in (GET /api/v1/server), asked once; {} from a
 * server that does not say. */
export function serverFeatures() {
  features ??= fetch("/api/v1/server")
    .then((response) => (response.ok ? response.json() : {}))
    .catch(() => ({}));
  return features;
}

export async function register(username, email, password) {
  const response = await fetch("/register", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, email, password }),
  });
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

/** fetch() with the access token; one refresh and retry on a 401. */
export async function authorizedFetch(url, options = {}) {
  const attempt = () =>
    fetch(url, { ...options, headers: { ...(options.headers || {}), ...authorization() } });
  let response = await attempt();
  if (response.status === 401 && accessToken && (await refresh())) response = await attempt();
  if (response.status === 401) setToken(null);
  return response;
}

/** A JSON API call: the parsed answer, or an ApiError. */
export async function call(method, url, body) {
  const options = { method };
  if (body !== undefined) {
    options.headers = { "Content-Type": "application/json" };
    options.body = JSON.stringify(body);
  }
  const response = await authorizedFetch(url, options);
  if (!response.ok) throw await errorOf(response);
  return response.status === 204 ? null : response.json();
}

export const api = {
  me: () => call("GET", "/me"),
  listing: (folder, { offset = 0, limit = 1000, sort = "name", order = "asc" } = {}) =>
    call("GET", `/api/v1/folders/${folder}?offset=${offset}&limit=${limit}&sort=${sort}&order=${order}`),
  createFolder: (parentId, name) =>
    call("POST", "/api/v1/folders?on_conflict=fail", { parent_id: parentId, name }),
  ensureFolder: async (parentId, name) => {
    try {
      return await call("POST", "/api/v1/folders?on_conflict=fail", { parent_id: parentId, name });
    } catch (error) {
      if (error.status !== 409) throw error;
      const page = await api.listing(parentId, { limit: 10000 });
      const found = page.entries.find((entry) => entry.type === "folder" && entry.name === name);
      if (!found) throw error;
      return found;
    }
  },
  update: (entry, changes) =>
    call("PATCH", `/api/v1/${entry.type === "folder" ? "folders" : "files"}/${entry.id}`, changes),
  copy: (entry, targetId) =>
    call("POST", `/api/v1/${entry.type === "folder" ? "folders" : "files"}/${entry.id}/copy?on_conflict=rename`,
      entry.type === "folder" ? { parent_id: targetId } : { folder_id: targetId }),
  trash: (entry) => call("DELETE", `/api/v1/${entry.type === "folder" ? "folders" : "files"}/${entry.id}`),
  listTrash: () => call("GET", "/api/v1/trash"),
  restore: (entry) => call("POST", `/api/v1/trash/${entry.type}/${entry.id}/restore`),
  emptyTrash: () => call("DELETE", "/api/v1/trash"),
  sessions: () => call("GET", "/sessions"),
  endSession: (id) => call("DELETE", `/sessions/${encodeURIComponent(id)}`),
  endOtherSessions: () => call("POST", "/sessions/revoke-all", { keep_current: true }),
  changePassword: (oldPassword, newPassword) =>
    call("POST", "/password", { old_password: oldPassword, new_password: newPassword }),
  uploadCheck: (hashes) => call("POST", "/api/v1/upload-check", { sha256: hashes }),
  fromContent: (files) => call("POST", "/api/v1/files/from-content/batch?on_conflict=rename", { files }),
};

/** Where a <video>, an <img> or a download link reads a file (cookie-authenticated). */
export const contentUrl = (fileId) => `/api/v1/web/content/files/${fileId}`;
export const zipUrl = (folderId) => `/api/v1/web/content/folders/${folderId}/zip`;
