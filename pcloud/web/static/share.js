// The file drop page: uploads each chosen file over tus (https://tus.io), in pieces, and
// remembers each upload's URL (by name, size and modification time) so that choosing the
// same file again after a dropped connection or a closed tab goes on from what arrived.
"use strict";

(function () {
  const drop = document.getElementById("drop");
  if (!drop) return;
  const endpoint = drop.dataset.endpoint;
  const chunk = Number(drop.dataset.chunk);
  const list = document.getElementById("uploads");
  const input = document.getElementById("files");
  const TUS = { "Tus-Resumable": "1.0.0" };

  function b64(text) {
    return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
  }

  function memoryKey(file) {
    return "pcloud-drop:" + endpoint + ":" + [file.name, file.size, file.lastModified].join(":");
  }

  async function startOrResume(file, say) {
    const remembered = localStorage.getItem(memoryKey(file));
    if (remembered) {
      const head = await fetch(remembered, { method: "HEAD", headers: TUS });
      if (head.ok) {
        const offset = Number(head.headers.get("Upload-Offset"));
        say("resuming at " + offset + " bytes");
        return { url: remembered, offset: offset, resumed: offset };
      }
      localStorage.removeItem(memoryKey(file));
    }
    const metadata = "filename " + b64(file.name) + ",modified_at " + b64(String(file.lastModified));
    const created = await fetch(endpoint, {
      method: "POST",
      headers: { ...TUS, "Upload-Length": String(file.size), "Upload-Metadata": metadata },
    });
    if (created.status !== 201) throw new Error(await errorOf(created));
    const url = new URL(created.headers.get("Location"), location.href).href;
    localStorage.setItem(memoryKey(file), url);
    return { url: url, offset: 0, resumed: 0 };
  }

  async function errorOf(response) {
    try { return (await response.json()).error || response.statusText; }
    catch (e) { return response.status + " " + response.statusText; }
  }

  async function send(file) {
    const row = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = file.name;  // a name is text, never markup
    const bar = document.createElement("progress");
    bar.max = file.size || 1;
    const status = document.createElement("span");
    status.className = "muted upload-status";
    row.append(name, bar, status);
    list.append(row);
    const say = (text) => { status.textContent = text; };
    try {
      let upload = await startOrResume(file, say);
      let offset = upload.offset;
      bar.value = offset;
      while (offset < file.size) {
        const piece = file.slice(offset, Math.min(offset + chunk, file.size));
        const answer = await fetch(upload.url, {
          method: "PATCH",
          headers: { ...TUS, "Upload-Offset": String(offset), "Content-Type": "application/offset+octet-stream" },
          body: piece,
        });
        if (answer.status !== 204) throw new Error(await errorOf(answer));
        offset = Number(answer.headers.get("Upload-Offset"));
        bar.value = offset;
        say(Math.floor((offset / file.size) * 100) + "%");
      }
      localStorage.removeItem(memoryKey(file));
      row.dataset.done = "true";
      row.dataset.resumedAt = String(upload.resumed);
      say("sent" + (upload.resumed ? " (resumed at " + upload.resumed + " bytes)" : ""));
    } catch (error) {
      row.dataset.failed = "true";
      say("failed: " + error.message + " (choose the file again to go on)");
    }
  }

  document.getElementById("send").addEventListener("click", async () => {
    for (const file of Array.from(input.files)) await send(file);
  });
})();
