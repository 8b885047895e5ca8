// The photo page: choose or drop a file, upload it as a preview, adjust the square crop
// (drag, zoom, keyboard), and see each client's rendition. No libraries.
(function () {
  "use strict";
  const app = document.getElementById("photo-app");
  if (!app) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const key = app.dataset.key;
  const $ = (id) => document.getElementById(id);
  const file = $("file"), drop = $("dropzone"), error = $("upload-error"), status = $("upload-status");
  const crop = $("crop"), stage = $("stage"), img = $("source"), box = $("box");
  const zoom = $("zoom"), cropText = $("crop-text"), suggestedBtn = $("suggested");
  const preview = $("preview");

  // Confirmation for destructive forms (remove).
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (e) => { if (!window.confirm(form.dataset.confirm)) e.preventDefault(); });
  });
  if (!file) return;

  let chosen = null;          // the File being edited
  let objectUrl = null;
  let src = null;             // {width, height}: upright source pixels (from the server)
  let box0 = null;            // the server's suggested crop
  let cur = null;             // {x, y, size} in source pixels
  let minSize = 48;
  let timer = null;
  let inflight = 0;

  function showError(message) {
    error.textContent = message;
    error.hidden = !message;
  }
  function say(message) { status.textContent = message; }

  // --- choosing a file ----------------------------------------------------------------------
  file.addEventListener("change", () => { if (file.files[0]) start(file.files[0]); });
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => {
    e.preventDefault(); drop.classList.add("over");
  }));
  ["dragleave", "dragend", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    const f = e.dataTransfer && e.dataTransfer.files[0];
    if (f) start(f);
  });

  // --- a photo over the size limit is shrunk here, not refused ------------------------------
  // A phone photo is often a few MB over [limits] max_bytes; the server only keeps 648 px, so
  // the page re-encodes it (upright, as the browser shows it) as a JPEG of at most SHRINK_SIDE
  // px a side under the limit, and says so. A file the browser cannot decode goes as it is
  // (the server then names the limit).
  const SHRINK_SIDE = 2048;
  const maxBytes = Number(app.dataset.maxBytes) || 0;
  const shrinkNote = $("shrink-note");

  function mb(n) { return `${(n / (1024 * 1024)).toFixed(1)} MB`; }

  async function shrink(f) {
    let bitmap;
    try {
      bitmap = await createImageBitmap(f, { imageOrientation: "from-image" });
    } catch (e) {
      return null;
    }
    const long = Math.max(bitmap.width, bitmap.height);
    let side = Math.min(SHRINK_SIDE, long);
    try {
      for (let attempt = 0; attempt < 6; attempt++) {
        const w = Math.max(1, Math.round(bitmap.width * side / long));
        const h = Math.max(1, Math.round(bitmap.height * side / long));
        const canvas = document.createElement("canvas");
        canvas.width = w; canvas.height = h;
        const ctx = canvas.getContext("2d");
        ctx.fillStyle = "#fff";  // transparency flattened on white, as the server does
        ctx.fillRect(0, 0, w, h);
        ctx.imageSmoothingQuality = "high";
        ctx.drawImage(bitmap, 0, 0, w, h);
        for (const quality of [0.9, 0.82, 0.72]) {
          const blob = await new Promise((done) => canvas.toBlob(done, "image/jpeg", quality));
          if (blob && blob.size <= maxBytes) {
            const name = (f.name || "photo").replace(/\.[^.]*$/, "") + ".jpg";
            return { file: new File([blob], name, { type: "image/jpeg" }), width: w, height: h };
          }
        }
        side = Math.round(side * 0.75);
      }
      return null;
    } finally {
      bitmap.close();
    }
  }

  async function start(f) {
    showError("");
    shrinkNote.hidden = true;
    if (maxBytes && f.size > maxBytes) {
      say(`This photo is ${mb(f.size)}, over the ${mb(maxBytes)} limit: shrinking it…`);
      const small = await shrink(f);
      if (small) {
        shrinkNote.textContent = `Your photo was ${mb(f.size)}, over the ${mb(maxBytes)} limit, ` +
          `so this page shrank it to ${small.width}×${small.height} px (${mb(small.file.size)}) ` +
          "before uploading. That is still far more than the 648 px kept.";
        shrinkNote.hidden = false;
        f = small.file;
      }
    }
    chosen = f;
    crop.hidden = true;
    const note = $("pending-note");
    if (note) note.remove();
    const tips = $("tips");
    if (tips) tips.hidden = true;
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = URL.createObjectURL(f);
    say("Uploading and finding the face…");
    const data = await upload(null);
    if (!data) { preview.hidden = true; return; }
    src = data.source;
    box0 = data.crop;
    explain(data.crop_decision);
    showChecks(data.checks || []);
    minSize = Math.min(src.width, src.height, Math.max(48, Number(app.dataset.min) || 48));
    img.onload = () => {
      crop.hidden = false;
      setBox(box0, false);
      say("Preview ready. Adjust the crop if you like, then save or cancel.");
    };
    img.onerror = () => {
      // The browser cannot show this format (the server could read it): no crop view.
      crop.hidden = true;
      say("Preview ready (this browser cannot show the original for cropping).");
    };
    img.src = objectUrl;
  }

  // --- talking to the server -------------------------------------------------------------------
  async function upload(box) {
    const ticket = ++inflight;
    const url = `/web/users/${encodeURIComponent(key)}/preview` +
      (box ? `?crop=${box.x},${box.y},${box.size}` : "");
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        body: chosen,
        headers: { "X-CSRF-Token": csrf, "Content-Type": chosen.type || "application/octet-stream" },
        credentials: "same-origin",
      });
    } catch (e) {
      if (ticket === inflight) { showError("The server could not be reached. Check the connection and try again."); say(""); }
      return null;
    }
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (ticket !== inflight) return null;  // a newer upload replaced this one
    if (!response.ok) {
      const message = data && data.error && data.error.message;
      showError(message || `The upload failed (HTTP ${response.status}).`);
      say("");
      return null;
    }
    showError("");
    showPreview(data);
    return data;
  }

  function showPreview(data) {
    for (const [size, url] of Object.entries(data.previews)) {
      const el = $(`preview-${size}`);
      if (el) el.src = url;
      const capped = $(`capped-${size}`);
      if (capped) {
        capped.hidden = !data.capped.includes(Number(size));
        const largest = Math.max(...data.sizes);
        capped.textContent = app.dataset.sdOnly === "1"
          ? `This account keeps sizes up to ${largest} px, so this shows ${largest} px.`
          : `The crop is under ${size} px, so this shows ${largest} px (never upscaled).`;
      }
    }
    preview.hidden = false;
  }

  // Why the suggested square is where it is; a guess asks the user to check it.
  // The automatic photo checks, in plain words next to the previews (docs/checks.md).
  function showChecks(checks) {
    const box = $("checks"), list = $("checks-list");
    if (!box || !list) return;
    list.textContent = "";
    // `review` is shown as a warning: approval does not exist yet (docs/checks.md).
    const label = { pass: "OK", warn: "Warning", review: "Warning" };
    for (const c of checks) {
      const li = document.createElement("li");
      li.className = `check check-${c.outcome}`;
      li.dataset.check = c.id;
      li.textContent = `${label[c.outcome] || c.outcome}: ${c.words}.`;
      list.appendChild(li);
    }
    box.hidden = checks.length === 0;
  }

  function explain(d) {
    const why = $("crop-why");
    if (!why || !d) return;
    const score = `${Math.round(d.confidence * 100)}%`;
    const note = d.note ? ` (${d.note})` : "";
    const text = {
      "face": `Suggested around your face (detector confidence ${score}).`,
      "several faces": `Several faces found: the suggestion frames one${note}. Check it is you.`,
      "doubtful face: centre": `No face we could trust${note}: the suggestion is the centre of the picture. Please adjust it.`,
      "no face: centre": "No face found: the suggestion is the centre of the picture. Please adjust it.",
      "manual": "Your own crop.",
    }[d.reason] || `Suggestion: ${d.reason}${note}.`;
    why.textContent = text;
    why.classList.toggle("guess", Boolean(d.guess));
  }

  // --- the crop square ------------------------------------------------------------------------
  function clamp(b) {
    const size = Math.round(Math.max(minSize, Math.min(b.size, src.width, src.height)));
    const x = Math.round(Math.max(0, Math.min(b.x, src.width - size)));
    const y = Math.round(Math.max(0, Math.min(b.y, src.height - size)));
    return { x, y, size };
  }
  function scale() { return img.clientWidth / src.width; }
  function draw() {
    const s = scale();
    box.style.left = `${cur.x * s}px`;
    box.style.top = `${cur.y * s}px`;
    box.style.width = box.style.height = `${cur.size * s}px`;
    const max = Math.min(src.width, src.height);
    zoom.value = String(max === minSize ? 0 : Math.round(100 * (max - cur.size) / (max - minSize)));
    cropText.textContent = `Crop: ${cur.size}×${cur.size} px at (${cur.x}, ${cur.y}) of ${src.width}×${src.height}.`;
  }
  function setBox(b, changed) {
    cur = clamp(b);
    draw();
    if (changed) schedule();
  }
  function schedule() {
    clearTimeout(timer);
    say("Updating the preview…");
    timer = setTimeout(async () => {
      const data = await upload(cur);
      if (data) say("Preview updated.");
    }, 450);
  }
  function zoomTo(size) {
    const cx = cur.x + cur.size / 2, cy = cur.y + cur.size / 2;
    const n = Math.max(minSize, Math.min(size, src.width, src.height));
    setBox({ x: cx - n / 2, y: cy - n / 2, size: n }, true);
  }

  zoom.addEventListener("input", () => {
    const max = Math.min(src.width, src.height);
    zoomTo(max - (max - minSize) * Number(zoom.value) / 100);
  });
  suggestedBtn.addEventListener("click", () => { if (box0) setBox(box0, true); });
  window.addEventListener("resize", () => { if (cur && !crop.hidden) draw(); });

  let drag = null;
  stage.addEventListener("pointerdown", (e) => {
    if (!cur) return;
    e.preventDefault();
    stage.focus();
    const s = scale();
    const rect = img.getBoundingClientRect();
    const px = (e.clientX - rect.left) / s, py = (e.clientY - rect.top) / s;
    const resize = e.target.classList.contains("handle");
    if (!resize && e.target !== box) setBox({ x: px - cur.size / 2, y: py - cur.size / 2, size: cur.size }, false);
    drag = { px, py, start: { ...cur }, resize };
    stage.setPointerCapture(e.pointerId);
  });
  stage.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const s = scale();
    const rect = img.getBoundingClientRect();
    const dx = (e.clientX - rect.left) / s - drag.px, dy = (e.clientY - rect.top) / s - drag.py;
    if (drag.resize) {
      const n = Math.max(minSize, drag.start.size + Math.max(dx, dy));
      setBox({ x: drag.start.x, y: drag.start.y, size: Math.min(n, src.width - drag.start.x, src.height - drag.start.y) }, false);
    } else {
      setBox({ x: drag.start.x + dx, y: drag.start.y + dy, size: drag.start.size }, false);
    }
  });
  const endDrag = () => { if (drag) { drag = null; schedule(); } };
  stage.addEventListener("pointerup", endDrag);
  stage.addEventListener("pointercancel", endDrag);
  stage.addEventListener("wheel", (e) => {
    if (!cur) return;
    e.preventDefault();
    zoomTo(cur.size * (e.deltaY > 0 ? 1.06 : 1 / 1.06));
  }, { passive: false });
  stage.addEventListener("keydown", (e) => {
    if (!cur) return;
    const step = Math.max(1, Math.round(cur.size * (e.shiftKey ? 0.1 : 0.02)));
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (moves[e.key]) {
      e.preventDefault();
      setBox({ x: cur.x + moves[e.key][0], y: cur.y + moves[e.key][1], size: cur.size }, true);
    } else if (e.key === "+" || e.key === "=") {
      e.preventDefault(); zoomTo(cur.size / 1.1);
    } else if (e.key === "-" || e.key === "_") {
      e.preventDefault(); zoomTo(cur.size * 1.1);
    }
  });
})();
