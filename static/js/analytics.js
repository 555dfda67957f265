// Session page: upload with a progress bar per file, then photos and the summary kept up to date
// by polling the API (EduMood.poll, no reload).
(function () {
  "use strict";
  const configNode = document.getElementById("session-config");
  if (!configNode) return;
  const cfg = JSON.parse(configNode.textContent);
  const photosNode = document.getElementById("photos");
  const uploadsNode = document.getElementById("uploads");
  const cards = new Map(); // photo id -> signature of what the card shows
  let pending = 0; // uploads in flight

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "style") node.style.cssText = value; // CSSOM: allowed by a strict CSP
      else node.setAttribute(key, value);
    }
    children.forEach((child) => child && node.append(child));
    return node;
  }

  function svgEl(tag, attrs) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    return node;
  }

  function colour(state) {
    return cfg.colours[state] || cfg.colours._other;
  }

  function pct(value) {
    return value === null || value === undefined ? "—" : Math.round(value * 100) + "%";
  }

  function statusText(photo) {
    if (photo.status === "done") {
      return `done, ${photo.face_count} face${photo.face_count === 1 ? "" : "s"}`;
    }
    return photo.status;
  }

  function confidence(face) {
    return Math.max(...Object.values(face.probabilities));
  }

  function stateProbability(face) {
    return (face.state_probabilities || {})[face.state];
  }

  function uncertain(face) {
    return confidence(face) < cfg.lowConfidence;
  }

  function faceName(index) {
    return `Face ${index + 1}`;
  }

  // How an expression label reads in "from a sad-looking expression".
  const LOOKING = { angry: "an angry", disgust: "a disgusted", fear: "a fearful", happy: "a happy",
    neutral: "a neutral", sad: "a sad", surprise: "a surprised" };

  function probabilityList(probabilities) {
    const rows = el("ul", { class: "probabilities" });
    for (const [label, p] of Object.entries(probabilities).sort((a, b) => b[1] - a[1])) {
      rows.append(el("li", {},
        el("span", { class: "label", text: label }),
        el("span", { class: "bar" }, el("span", { style: `width: ${Math.round(p * 100)}%` })),
        el("span", { class: "value", text: pct(p) })));
    }
    return rows;
  }

  // The detail of one face, the state first: "Bored (from a sad-looking expression), 53%" with
  // the probability of each state; the model's own expression classes under "details".
  function faceDetail(face, index, close) {
    const states = face.state_probabilities || {};
    const looking = LOOKING[face.label] || `a “${face.label}”`;
    return el("div", { class: "face-detail", "data-face-detail": index, role: "dialog",
      "aria-label": faceName(index) },
      close,
      el("p", { class: "face-state" },
        el("strong", { text: `${faceName(index)}: ` }),
        el("span", { class: "state-" + face.state, text: face.state }),
        ` (from ${looking}-looking expression), ${pct(states[face.state])}`,
        uncertain(face) ? el("span", { class: "uncertain-tag", text: "low confidence" }) : null),
      el("p", { class: "muted", text: "Each state's probability:" }),
      probabilityList(states),
      el("details", {},
        el("summary", { text: `Details: the ${Object.keys(face.probabilities).length} expressions` }),
        probabilityList(face.probabilities)));
  }

  // Where a face's detail opens: beside its box, on the side of the photo with more room (a
  // phone shows it as a sheet along the bottom of the screen instead, by CSS). Called once it
  // is shown: a detail taller than the room under a short photo opens upwards, so that it never
  // runs past the page's content onto the footer.
  function placeBeside(popover, face, width, height) {
    const left = face.box.x / width, right = (face.box.x + face.box.w) / width;
    const top = face.box.y / height, bottom = (face.box.y + face.box.h) / height;
    popover.style.left = left + right < 1 ? `${right * 100}%` : "";
    popover.style.right = left + right < 1 ? "" : `${(1 - left) * 100}%`;
    const stage = popover.parentElement.getBoundingClientRect();
    const roomBelow = document.querySelector("main").getBoundingClientRect().bottom -
      (stage.top + top * stage.height);
    const below = top + bottom < 1 && popover.offsetHeight <= roomBelow;
    popover.style.top = below ? `${top * 100}%` : "";
    popover.style.bottom = below ? "" : `${(1 - bottom) * 100}%`;
  }

  // The photo, its boxes and their numbers, larger, in a modal dialog (Escape closes it).
  const lightbox = document.getElementById("lightbox");
  function openLightbox(frame, width, height) {
    const copy = frame.cloneNode(true);
    copy.classList.remove("zoomable"); // already as large as it gets
    copy.querySelectorAll("[tabindex]").forEach((node) => node.removeAttribute("tabindex"));
    const scale = Math.min(0.94 * window.innerWidth / width, 0.82 * window.innerHeight / height);
    copy.style.width = `${Math.round(width * scale)}px`;
    lightbox.querySelector("[data-lightbox-frame]").replaceChildren(copy);
    lightbox.showModal();
  }
  // Escape, or a click outside it (and outside the boxes and the face list), closes a face's
  // detail: it may cover the list under its photo.
  function closeFaces(except) {
    document.querySelectorAll(".face-popover:not([hidden])").forEach((node) => {
      if (node !== except) node.closeFace();
    });
  }
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") closeFaces(null); });
  document.addEventListener("click", (event) => {
    if (!event.target.closest(".face-popover, .face-box, .face-item")) closeFaces(null);
  });
  if (lightbox) {
    lightbox.addEventListener("click", (event) => {
      if (event.target === lightbox || event.target.closest("[data-lightbox-close]")) lightbox.close();
    });
  }

  // Without per-face detail (`faces` null: the classroom hides it) a photo has no boxes or list.
  function renderPhoto(photo) {
    const faces = photo.faces || [];
    const width = photo.width || 4;
    const height = photo.height || 3;
    const frame = el("div", { class: "frame", style: `aspect-ratio: ${width} / ${height}` });
    if (photo.image_url) {
      frame.append(el("img", { src: photo.image_url, alt: "Session photo " + photo.id, loading: "lazy" }));
    } else {
      frame.append(el("div", { class: "neutral", text: "Original deleted after analysis" + (faces.length ? "; boxes shown on a blank canvas of the photo's size." : ".") }));
    }
    const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "group", "aria-label": "Face boxes" });
    const list = el("ol", { class: "face-list", "aria-label": "Faces in this photo" });
    const popover = el("div", { class: "face-popover", "aria-live": "polite", hidden: "" });
    const boxes = [];
    const items = [];
    function select(index) {
      boxes.forEach((box, i) => box.classList.toggle("selected", i === index));
      items.forEach((item, i) => item.setAttribute("aria-pressed", String(i === index)));
      if (index === null) {
        popover.hidden = true;
        return;
      }
      closeFaces(popover); // one face's detail open at a time, across photos
      const close = el("button", { type: "button", class: "close", "aria-label": "Close", text: "×" });
      close.addEventListener("click", () => { select(null); boxes[index].focus(); });
      popover.replaceChildren(faceDetail(faces[index], index, close));
      popover.hidden = false;
      placeBeside(popover, faces[index], width, height);
      popover.querySelector("details").addEventListener("toggle", () => {
        placeBeside(popover, faces[index], width, height); // taller now: it may need to open upwards
      });
    }
    popover.closeFace = () => select(null);
    faces.forEach((face, index) => {
      const summary = `${faceName(index)}: ${face.state} ${pct(stateProbability(face))}` +
        (uncertain(face) ? ", low confidence" : "");
      // A transparent fill makes the whole inside of the box clickable and tappable.
      const box = svgEl("rect", {
        x: face.box.x, y: face.box.y, width: face.box.w, height: face.box.h,
        fill: "transparent", stroke: colour(face.state), "stroke-width": 2,
        class: "face-box" + (uncertain(face) ? " uncertain" : ""),
        "vector-effect": "non-scaling-stroke", tabindex: 0, role: "button",
        "aria-label": summary, "data-face": index, "data-state": face.state,
      });
      const title = svgEl("title", {});
      title.textContent = summary;
      box.append(title);
      box.addEventListener("click", () => select(index));
      box.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); select(index); }
      });
      svg.append(box);
      boxes.push(box);
      frame.append(el("span", { class: "face-number", "aria-hidden": "true", text: String(index + 1),
        style: `left: ${(100 * face.box.x) / width}%; top: ${(100 * face.box.y) / height}%` }));
      const item = el("button", { type: "button", class: "face-item" + (uncertain(face) ? " uncertain" : ""),
        "aria-pressed": "false", "data-face-item": index },
        el("span", { class: "chip state-" + face.state }),
        `${index + 1}. ${face.state} ${pct(stateProbability(face))}`,
        uncertain(face) ? el("span", { class: "uncertain-tag", text: "?" , title: "low confidence" }) : null);
      item.addEventListener("click", () => select(index));
      items.push(item);
      list.append(el("li", {}, item));
    });
    if (faces.length) frame.append(svg);
    // A click on the photo (not on a box) opens it larger; so does the button, by keyboard.
    const enlarge = photo.image_url ? el("button", { type: "button", class: "link-button", text: "Enlarge" }) : null;
    if (enlarge) {
      frame.classList.add("zoomable");
      frame.addEventListener("click", (event) => {
        if (!event.target.closest(".face-box")) openLightbox(frame, width, height);
      });
      enlarge.addEventListener("click", () => openLightbox(frame, width, height));
    }
    const caption = el("figcaption", {},
      el("span", { class: "status " + photo.status, text: statusText(photo), "data-status": photo.status }),
      " ", el("span", { class: "muted", text: photo.original_name || "" }), " ", enlarge);
    if (faces.length) caption.append(list);
    if (photo.status === "failed") {
      caption.append(el("div", { class: "error", text: photo.error }));
      if (photo.image_url) {
        const retry = el("button", { type: "button", text: "Retry" });
        retry.addEventListener("click", () => retryPhoto(photo.id, retry));
        caption.append(retry);
      }
    }
    return el("figure", { class: "photo", id: "photo-" + photo.id, "data-id": photo.id },
      el("div", { class: "stage" }, frame, popover), caption);
  }

  function showPhotos(photos) {
    followUploads(photos);
    document.getElementById("no-photos").hidden = photos.length > 0;
    for (const photo of photos) {
      const signature = JSON.stringify([photo.status, photo.faces, photo.image_url, photo.error]);
      if (cards.get(photo.id) === signature) continue;
      cards.set(photo.id, signature);
      const card = renderPhoto(photo);
      const old = document.getElementById("photo-" + photo.id);
      if (old) old.replaceWith(card);
      else photosNode.append(card);
    }
  }

  function showSummary(summary) {
    document.querySelector("[data-engagement]").textContent = pct(summary.engagement_index);
    document.querySelector("[data-faces]").textContent = summary.faces;
    for (const [state, n] of Object.entries(summary.counts)) {
      const count = document.querySelector(`[data-count="${state}"]`);
      if (count) count.textContent = n;
      const share = document.querySelector(`[data-share="${state}"]`);
      if (share) share.textContent = pct(summary.shares[state]);
      const corrected = document.querySelector(`[data-corrected="${state}"]`);
      if (corrected) corrected.textContent = pct(summary.corrected_shares?.[state] ?? null);
      const range = summary.intervals?.[state];
      const rangeNode = document.querySelector(`[data-range="${state}"]`);
      if (rangeNode) rangeNode.textContent = range ? `${pct(range[0])}–${pct(range[1])}` : "—";
    }
    // The conclusion meter's words come with the numbers they speak of (aggregates.py).
    const conclusion = document.getElementById("conclusion");
    conclusion.textContent = summary.conclusion;
    conclusion.hidden = !summary.conclusion;
    document.getElementById("correction-method").textContent = summary.method
      ? `Method: ${summary.method.toUpperCase()}, ${summary.faces} faces.` : "";
    for (const [status, n] of Object.entries(summary.photos)) {
      const node = document.querySelector(`[data-photos="${status}"]`);
      if (node) node.textContent = n;
    }
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    return response.json();
  }

  function waiting(photos) {
    return photos.some((p) => p.status === "queued" || p.status === "analysing");
  }

  // One poll: photos and summary; keep polling while photos or uploads are under way.
  async function refresh() {
    const photos = [];
    for (let url = cfg.photosUrl; url; ) {
      const page = await getJSON(url);
      photos.push(...page.results);
      url = page.next;
    }
    showPhotos(photos);
    const session = await getJSON(cfg.sessionUrl);
    showSummary(session.summary);
    const uncorrected = document.getElementById("uncorrected");
    uncorrected.hidden = !session.uncorrected_reason;
    uncorrected.textContent = `Shares are uncorrected (raw counts only): ${session.uncorrected_reason}.`;
    if (session.model_versions.length) {
      document.getElementById("model-versions").textContent =
        "Results from: " + session.model_versions.map((v) => v.name).join(", ") + ".";
    }
    return waiting(photos) || pending > 0;
  }
  const poller = EduMood.poll(refresh);

  function retryPhoto(id, button) {
    button.disabled = true;
    fetch(cfg.retryUrl.replace("/0/", `/${id}/`), {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRFToken": cfg.csrfToken, Accept: "application/json" },
    }).then(() => poller.schedule(200));
  }

  // --- upload -----------------------------------------------------------------------------
  // Files go in batches within the API's limits (files per request, bytes per request), one
  // batch at a time; a 429 or 503 is waited out (Retry-After) and the batch sent again. A file
  // is shown as stored only when the answer lists a photo stored from it.
  const RETRIES = 8;
  const followed = new Map(); // photo id -> the upload row of the file it was stored from

  // Each stored file's row follows its photos to done or failed (with the reason).
  function followUploads(photos) {
    const byRow = new Map();
    for (const photo of photos) {
      const item = followed.get(photo.id);
      if (item) byRow.set(item, [...(byRow.get(item) || []), photo]);
    }
    for (const [item, own] of byRow) {
      const failed = own.filter((p) => p.status === "failed");
      const done = own.filter((p) => p.status === "done");
      const faces = done.reduce((n, p) => n + p.face_count, 0);
      const busy = own.length - failed.length - done.length;
      const parts = [];
      if (done.length) parts.push(`done, ${faces} face${faces === 1 ? "" : "s"}` + (own.length > 1 ? ` in ${done.length} photo${done.length === 1 ? "" : "s"}` : ""));
      if (failed.length) parts.push(`failed: ${failed.map((p) => p.error).join(" ")}`);
      if (busy) parts.push(own.some((p) => p.status === "analysing") ? "analysing" : "queued for analysis");
      const state = busy ? "analysing" : failed.length ? "failed" : "done";
      item.row.dataset.analysis = state;
      item.row.classList.toggle("failed", state === "failed");
      item.message.className = "message-text" + (failed.length ? " error" : "");
      item.message.textContent = parts.join("; ");
    }
  }

  function uploadRow(file) {
    const bar = el("span", { style: "width: 0%" });
    const message = el("div", { class: "message-text muted", text: "waiting" });
    const row = el("li", { "data-file": file.name }, el("span", { class: "name", text: file.name, title: file.name }),
      el("div", { class: "progress" }, bar), message);
    uploadsNode.append(row);
    return { file, row, bar, message };
  }

  // One line per refused file (or zip entry), under the file's row: each detail is a sentence
  // that names the file and says what to do.
  function showErrors(item, errors) {
    if (!errors || !errors.length) return;
    const list = el("ul", { class: "errors-list error" });
    errors.forEach((e) => list.append(el("li", { text: e.detail })));
    item.row.append(list);
  }

  function fail(item, text, errors) {
    item.row.dataset.outcome = "failed";
    item.row.classList.add("failed");
    item.bar.style.width = "100%";
    item.message.className = "message-text error";
    item.message.textContent = text;
    showErrors(item, errors);
  }

  function batches(items) {
    const result = [];
    let batch = [], bytes = 0;
    for (const item of items) {
      // Equal names in one request could not be told apart in the answer.
      const clash = batch.some((other) => other.file.name === item.file.name);
      if (batch.length && (clash || batch.length >= cfg.maxFiles || bytes + item.file.size > cfg.maxBatchBytes)) {
        result.push(batch);
        batch = [];
        bytes = 0;
      }
      batch.push(item);
      bytes += item.file.size;
    }
    if (batch.length) result.push(batch);
    return result;
  }

  function send(batch, onProgress) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", cfg.uploadUrl);
      xhr.setRequestHeader("X-CSRFToken", cfg.csrfToken);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) onProgress(event.loaded / event.total);
      });
      xhr.addEventListener("loadend", () => {
        let body = {};
        try { body = JSON.parse(xhr.responseText || "{}"); } catch (e) { body = {}; }
        resolve({ status: xhr.status, body, retryAfter: Number(xhr.getResponseHeader("Retry-After")) });
      });
      const data = new FormData();
      batch.forEach((item) => data.append("image", item.file));
      const activity = document.getElementById("activity");
      if (activity && activity.value) data.append("activity", activity.value);
      xhr.send(data);
    });
  }

  function sleep(seconds) {
    return new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  }

  function settle(item, body) {
    const own = (name) => name === item.file.name || name.startsWith(item.file.name + "/");
    const mine = (body.photos || []).filter((photo) => own(photo.file));
    mine.forEach((photo) => followed.set(photo.id, item));
    const stored = mine.length;
    const errors = (body.errors || []).filter((error) => own(error.file));
    if (!stored) {
      fail(item, errors.length ? "not stored" : "not stored: " + (body.detail || "no answer"), errors);
      return;
    }
    item.row.dataset.outcome = "stored";
    item.bar.style.width = "100%";
    item.message.className = "message-text";
    item.message.textContent = `stored: ${stored} photo${stored === 1 ? "" : "s"} queued for analysis` +
      (errors.length ? `; ${errors.length} not stored` : "");
    showErrors(item, errors);
  }

  async function uploadBatch(batch) {
    for (let attempt = 0; ; attempt += 1) {
      batch.forEach((item) => { item.message.textContent = "uploading 0%"; });
      const answer = await send(batch, (fraction) => batch.forEach((item) => {
        item.bar.style.width = Math.round(100 * fraction) + "%";
        item.message.textContent = "uploading " + Math.round(100 * fraction) + "%";
      }));
      if ((answer.status === 429 || answer.status === 503) && attempt < RETRIES) {
        const wait = Math.max(1, answer.retryAfter || 2 ** attempt);
        batch.forEach((item) => {
          item.bar.style.width = "0%";
          item.message.textContent = `server busy: trying again in ${wait} s`;
        });
        await sleep(wait);
        continue;
      }
      if (answer.status === 202 || (answer.status === 400 && answer.body.errors && answer.body.errors.length)) {
        batch.forEach((item) => settle(item, answer.body));
      } else {
        const text = answer.body.detail || (answer.status ? `Upload failed (${answer.status}).` : "Upload failed: no connection.");
        batch.forEach((item) => fail(item, "not stored: " + text));
      }
      return;
    }
  }

  let queue = Promise.resolve();

  function uploadAll(files) {
    const items = [];
    for (const file of files) {
      const item = uploadRow(file);
      if (file.size > cfg.maxBytes) {
        const mb = (bytes) => Math.round(bytes / 1048576) + " MB";
        fail(item, "not stored", [{ detail: `${file.name} is ${mb(file.size)}, over the limit of ${mb(cfg.maxBytes)} per file: make it smaller and upload it again.` }]);
      } else {
        items.push(item);
      }
    }
    pending += items.length;
    for (const batch of batches(items)) {
      queue = queue.then(() => uploadBatch(batch)).finally(() => {
        pending -= batch.length;
        poller.schedule(300);
      });
    }
  }

  const input = document.getElementById("file-input");
  const dropzone = document.getElementById("dropzone");
  if (input && dropzone) {
    const uploadChosen = () => { uploadAll(Array.from(input.files)); input.value = ""; };
    input.addEventListener("change", uploadChosen);
    // Files chosen while the page was still loading (before this listener) are not lost.
    if (input.files.length) uploadChosen();
    ["dragenter", "dragover"].forEach((type) => dropzone.addEventListener(type, (event) => {
      event.preventDefault();
      dropzone.classList.add("over");
    }));
    ["dragleave", "drop"].forEach((type) => dropzone.addEventListener(type, () => dropzone.classList.remove("over")));
    dropzone.addEventListener("drop", (event) => {
      event.preventDefault();
      uploadAll(Array.from(event.dataTransfer.files));
    });
  }

  showPhotos(cfg.photos);
  if (waiting(cfg.photos)) poller.schedule();
})();
