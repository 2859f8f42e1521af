// Quilt Curator: the review page's keyboard flow, image viewer, prefetch-and-swap queue,
// grid selection, and a notice for failed requests. No build step; htmx does the plain
// requests. Shortcuts are ignored while typing in a field.
(function () {
  "use strict";

  function $(id) { return document.getElementById(id); }

  function typing(target) {
    return target instanceof HTMLElement &&
      (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
  }

  function csrf() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"]; }
    catch (e) { return ""; }
  }

  // --- notice: non-blocking, with optional actions (retry, open) ------------------------
  function notice(text, actions) {
    const box = $("notice");
    if (!box) return;
    box.replaceChildren();
    const p = document.createElement("span");
    p.textContent = text;
    box.appendChild(p);
    (actions || []).forEach(function (action) {
      let el;
      if (action.href) {
        el = document.createElement("a");
        el.href = action.href;
      } else {
        el = document.createElement("button");
        el.type = "button";
        el.addEventListener("click", function () { box.hidden = true; action.run(); });
      }
      el.className = "notice-action";
      el.textContent = action.label;
      box.appendChild(el);
    });
    const close = document.createElement("button");
    close.type = "button";
    close.className = "notice-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", function () { box.hidden = true; });
    box.appendChild(close);
    box.hidden = false;
    clearTimeout(notice.timer);
    if (!actions || !actions.length) {
      notice.timer = setTimeout(function () { box.hidden = true; }, 8000);
    }
  }

  // A short confirmation that does not take the focus or block anything.
  function flash(text) {
    const box = $("flash");
    if (!box) return;
    box.textContent = text;
    box.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(function () { box.hidden = true; }, 2500);
  }

  function messageOf(xhr) {
    try {
      const doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      const node = doc.querySelector(".error-message");
      if (node) return node.textContent.trim();
    } catch (e) { /* fall through */ }
    return "The request failed (" + xhr.status + ").";
  }

  // --- image viewer: zoom and pan that persist from pair to pair -------------------------
  // State: z (zoom relative to "fit"), cx, cy (the image point at the viewer's centre, as
  // fractions of the image). Kept in localStorage, so the next pair opens the same way.
  const VIEW_KEY = "quilt.viewer";
  const Viewer = {
    state: (function () {
      try {
        const s = JSON.parse(localStorage.getItem(VIEW_KEY));
        if (s && isFinite(s.z) && isFinite(s.cx) && isFinite(s.cy)) return s;
      } catch (e) { /* default */ }
      return { z: 1, cx: 0.5, cy: 0.5 };
    })(),
    save: function () {
      try { localStorage.setItem(VIEW_KEY, JSON.stringify(this.state)); } catch (e) { /* private mode */ }
    },
    geometry: function () {
      const box = $("viewer"), img = $("pair-image");
      if (!box || !img || !img.naturalWidth) return null;
      const W = box.clientWidth, H = box.clientHeight, nw = img.naturalWidth, nh = img.naturalHeight;
      const fit = Math.min(W / nw, H / nh);
      return { box: box, img: img, W: W, H: H, nw: nw, nh: nh, fit: fit };
    },
    clamp: function (g) {
      const s = this.state;
      s.z = Math.min(Math.max(s.z, 0.5), Math.max(1, 8 / g.fit));
      if (s.z <= 1) { s.cx = 0.5; s.cy = 0.5; }
      s.cx = Math.min(Math.max(s.cx, 0), 1);
      s.cy = Math.min(Math.max(s.cy, 0), 1);
    },
    apply: function () {
      const g = this.geometry();
      if (!g) return;
      this.clamp(g);
      const scale = g.fit * this.state.z;
      const tx = g.W / 2 - this.state.cx * g.nw * scale;
      const ty = g.H / 2 - this.state.cy * g.nh * scale;
      g.img.style.transform = "translate(" + tx + "px," + ty + "px) scale(" + scale + ")";
      g.img.classList.add("placed");
      const label = $("zoom-level");
      if (label) label.textContent = Math.round(scale * 100) + "%";
    },
    zoomAt: function (factor, px, py) {
      const g = this.geometry();
      if (!g) return;
      const s = this.state;
      if (px === undefined) { px = g.W / 2; py = g.H / 2; }
      const scale = g.fit * s.z;
      const tx = g.W / 2 - s.cx * g.nw * scale, ty = g.H / 2 - s.cy * g.nh * scale;
      const u = (px - tx) / scale, v = (py - ty) / scale; // image point under the cursor
      s.z *= factor;
      this.clamp(g);
      const scale2 = g.fit * s.z;
      s.cx = (g.W / 2 - (px - u * scale2)) / (g.nw * scale2);
      s.cy = (g.H / 2 - (py - v * scale2)) / (g.nh * scale2);
      this.apply();
      this.save();
    },
    set: function (z) {
      const g = this.geometry();
      if (!g) return;
      this.state.z = z === "full" ? 1 / g.fit : 1;
      if (z !== "full") { this.state.cx = 0.5; this.state.cy = 0.5; }
      this.apply();
      this.save();
    },
    panBy: function (dx, dy) {
      const g = this.geometry();
      if (!g) return;
      const scale = g.fit * this.state.z;
      this.state.cx -= dx / (g.nw * scale);
      this.state.cy -= dy / (g.nh * scale);
      this.apply();
    },
    attach: function () {
      const img = $("pair-image");
      if (!img) return;
      if (img.complete && img.naturalWidth) this.apply();
      else img.addEventListener("load", function () { Viewer.apply(); }, { once: true });
    },
  };

  document.addEventListener("wheel", function (event) {
    const box = event.target instanceof Element && event.target.closest("#viewer");
    if (!box) return;
    event.preventDefault();
    const rect = box.getBoundingClientRect();
    Viewer.zoomAt(event.deltaY < 0 ? 1.15 : 1 / 1.15, event.clientX - rect.left, event.clientY - rect.top);
  }, { passive: false });

  let drag = null;
  document.addEventListener("pointerdown", function (event) {
    const box = event.target instanceof Element && event.target.closest("#viewer");
    if (!box || event.button !== 0) return;
    drag = { x: event.clientX, y: event.clientY, box: box };
    box.setPointerCapture(event.pointerId);
    box.classList.add("dragging");
  });
  document.addEventListener("pointermove", function (event) {
    if (!drag) return;
    Viewer.panBy(event.clientX - drag.x, event.clientY - drag.y);
    drag.x = event.clientX;
    drag.y = event.clientY;
  });
  document.addEventListener("pointerup", function () {
    if (!drag) return;
    drag.box.classList.remove("dragging");
    drag = null;
    Viewer.save();
  });
  window.addEventListener("resize", function () { Viewer.apply(); });
  document.addEventListener("click", function (event) {
    const tool = event.target instanceof Element && event.target.closest("[data-zoom]");
    if (!tool) return;
    const how = tool.getAttribute("data-zoom");
    if (how === "in") Viewer.zoomAt(1.25);
    else if (how === "out") Viewer.zoomAt(0.8);
    else Viewer.set(how);
  });

  // --- the queue: prefetch the next pane, swap it in on a decision, save behind ---------
  const Q = {
    ahead: null,        // { node, forId } : the next pane, parsed, image preloading
    token: 0,
    saving: new Map(),  // pair id -> promise of its save
    queuePane: null,    // the queue pane kept while walking back through history
    step: 0,            // 0: the queue; n: n decisions back
  };

  function pane() { return $("review-pane"); }
  function mode() { const p = pane(); return p ? p.dataset.mode : null; }
  function currentId() { const f = $("pair-form"); return f ? f.dataset.pairId : null; }

  function prefetch() {
    if (mode() !== "queue" || !currentId()) {
      Q.ahead = null;
      delete document.documentElement.dataset.aheadFor;
      return;
    }
    const forId = currentId();
    delete document.documentElement.dataset.aheadFor;
    const exclude = [forId].concat(Array.from(Q.saving.keys()));
    const token = ++Q.token;
    Q.ahead = null;
    fetch("/review/ahead?" + exclude.map(function (id) { return "exclude=" + encodeURIComponent(id); }).join("&"), {
      headers: { "HX-Request": "true" },
      credentials: "same-origin",
    }).then(function (response) {
      if (!response.ok) throw new Error(String(response.status));
      return response.text();
    }).then(function (html) {
      if (token !== Q.token) return;
      const template = document.createElement("template");
      template.innerHTML = html;
      const node = template.content.querySelector("#review-pane");
      if (!node) return;
      const img = node.querySelector("#pair-image");
      const entry = { node: node, forId: forId, preload: null };
      // Marks the page once the next pane and its decoded image are ready (tests wait on it).
      function ready() { if (Q.ahead === entry) document.documentElement.dataset.aheadFor = forId; }
      Q.ahead = entry;
      if (img) {
        // Load and decode now, so the swap shows a painted image at once.
        const pre = new Image();
        pre.src = img.getAttribute("src");
        entry.preload = pre;
        pre.decode().then(ready, ready);
      } else {
        ready();
      }
    }).catch(function () { if (token === Q.token) Q.ahead = null; });
  }

  function swapIn(node) {
    const old = pane();
    if (!old) return;
    old.replaceWith(node);
    if (window.htmx) window.htmx.process(node);
    setRejectMode(false);
    Viewer.attach();
    document.dispatchEvent(new CustomEvent("quilt:pane", { detail: { pairId: currentId() } }));
  }

  function save(pairId, data) {
    const promise = fetch("/review/pairs/" + pairId, {
      method: "POST",
      body: data,
      headers: { "X-CSRF-Token": csrf() },
      credentials: "same-origin",
    }).then(function (response) {
      if (response.ok) {
        if (window.htmx) window.htmx.trigger(document.body, data.get("action") === "skip" ? "pair-skipped" : "pair-decided");
        return;
      }
      return response.text().then(function (text) {
        const message = (text || "").trim().slice(0, 300) || ("Saving failed (" + response.status + ").");
        if (response.status === 409) {
          notice("Pair #" + pairId + " was changed by someone else; your decision was not saved. " + message,
            [{ label: "Open the current version", href: "/review/pairs/" + pairId }]);
        } else {
          notice("Pair #" + pairId + ": " + message, [
            { label: "Retry", run: function () { save(pairId, data); } },
            { label: "Open pair", href: "/review/pairs/" + pairId },
          ]);
        }
      });
    }).catch(function () {
      notice("Pair #" + pairId + " was not saved: the server could not be reached.",
        [{ label: "Retry", run: function () { save(pairId, data); } }]);
    }).finally(function () { Q.saving.delete(pairId); });
    Q.saving.set(pairId, promise);
    return promise;
  }

  // A decision in queue mode: swap the prefetched pane in, then save in the background.
  // Without a prefetched pane (it is still loading) the form posts as before (blocking).
  function decide(action) {
    const form = $("pair-form");
    if (!form) return;
    const button = action === "approve" ? $("btn-approve") : action === "skip" ? $("btn-skip") : $("btn-reject");
    if (mode() !== "queue") { if (button) button.click(); return; }
    if (!form.reportValidity()) return;
    const id = currentId();
    const ahead = Q.ahead;
    if (!ahead || ahead.forId !== id) { if (button) button.click(); return; }
    const data = new FormData(form);
    data.set("action", action);
    data.set("mode", "background");
    Q.ahead = null;
    swapIn(ahead.node);
    const verb = { approve: "Approved", reject: "Rejected", skip: "Skipped" }[action];
    flash(verb + " pair #" + id + (action === "skip" ? "." : ". Press u to undo."));
    save(id, data);
    prefetch();
  }

  function allSaved() { return Promise.all(Array.from(Q.saving.values())); }

  function loadPane(url, options) {
    return fetch(url, Object.assign({ headers: { "HX-Request": "true", "X-CSRF-Token": csrf() }, credentials: "same-origin" }, options || {}))
      .then(function (response) {
        return response.text().then(function (text) { return { response: response, text: text }; });
      });
  }

  function paneFrom(html) {
    const template = document.createElement("template");
    template.innerHTML = html;
    return template.content.querySelector("#review-pane");
  }

  function undo() {
    if (Q.step) { notice("Go forward to the queue (→) to undo."); return; }
    allSaved().then(function () {
      return loadPane("/review/undo", { method: "POST" });
    }).then(function (result) {
      const node = paneFrom(result.text);
      if (!result.response.ok || !node) {
        const doc = new DOMParser().parseFromString(result.text, "text/html");
        const msg = doc.querySelector(".error-message");
        notice(msg ? msg.textContent.trim() : "Nothing to undo.");
        return;
      }
      swapIn(node);
      if (window.htmx) window.htmx.trigger(document.body, "pair-decided");
      prefetch();
    }).catch(function () { notice("The server could not be reached. Try again."); });
  }

  function walk(delta) {
    const target = Q.step + delta;
    if (target < 0) return;
    if (target === 0) {
      if (Q.queuePane) { swapIn(Q.queuePane); Q.queuePane = null; }
      Q.step = 0;
      prefetch();
      return;
    }
    allSaved().then(function () { return loadPane("/review/mine/" + target); }).then(function (result) {
      const node = paneFrom(result.text);
      if (!result.response.ok || !node) {
        notice(delta < 0 ? "That is your first decision." : "No later decision.");
        return;
      }
      if (Q.step === 0) Q.queuePane = pane();
      Q.step = target;
      swapIn(node);
    }).catch(function () { notice("The server could not be reached. Try again."); });
  }

  // --- keyboard ---------------------------------------------------------------------------
  let rejectMode = false;

  function setRejectMode(on) {
    rejectMode = on;
    const hint = $("reject-hint");
    const group = $("reject-group");
    if (hint) hint.hidden = !on;
    if (group) group.classList.toggle("armed", on);
  }

  function rejectWith(index) {
    const select = $("reject-reason");
    if (!select) return;
    const option = select.querySelector('option[data-key="' + index + '"]');
    if (!option) return;
    select.value = option.value;
    setRejectMode(false);
    if (option.value === "other") {
      const comment = $("reject-comment");
      if (comment && !comment.value.trim()) { comment.focus(); return; }
    }
    decide("reject");
  }

  // Buttons clicked with the mouse in queue mode take the same fast path as the keys.
  document.addEventListener("click", function (event) {
    const button = event.target instanceof Element && event.target.closest("#pair-form button[name=action]");
    if (!button || mode() !== "queue" || event.isTrusted === false) return;
    const action = button.value;
    if (action === "save") return;
    if (action === "reject") {
      const select = $("reject-reason");
      if (!select || !select.value) return; // let the server say a reason is needed
      if (select.value === "other" && !($("reject-comment").value || "").trim()) return;
    }
    const ahead = Q.ahead;
    if (!ahead || ahead.forId !== currentId()) return;
    event.preventDefault();
    decide(action);
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if ($("grid-form")) { gridKey(event); return; }
    if (!pane()) return;
    const target = event.target;
    if (typing(target)) {
      if (event.key === "Escape") { target.blur(); setRejectMode(false); }
      // Enter in the comment field rejects; in other one-line fields it does nothing
      // (the form's first button is Approve: an implicit submit must not approve).
      if (event.key === "Enter" && target.tagName === "INPUT") {
        event.preventDefault();
        if (target.id === "reject-comment") decide("reject");
      }
      return;
    }
    if (rejectMode) {
      if (/^[1-9]$/.test(event.key)) { event.preventDefault(); rejectWith(event.key); }
      else if (event.key === "Escape") { setRejectMode(false); }
      return;
    }
    switch (event.key) {
      case "a": event.preventDefault(); decide("approve"); break;
      case "r": event.preventDefault(); setRejectMode(true); break;
      case "e": event.preventDefault(); if ($("caption")) $("caption").focus(); break;
      case "s": event.preventDefault(); if (mode() === "queue") decide("skip"); break;
      case "u": event.preventDefault(); undo(); break;
      case "ArrowLeft": case "[": event.preventDefault(); walk(1); break;
      case "ArrowRight": case "]": event.preventDefault(); walk(-1); break;
      case "+": case "=": event.preventDefault(); Viewer.zoomAt(1.25); break;
      case "-": case "_": event.preventDefault(); Viewer.zoomAt(0.8); break;
      case "0": event.preventDefault(); Viewer.set("fit"); break;
      case "1": event.preventDefault(); Viewer.set("full"); break;
      default: break;
    }
  });

  // --- grid: select with click, shift-click, keyboard; decide the selection -------------
  let gridAnchor = null;
  let gridRejectMode = false;

  function tiles() { return Array.from(document.querySelectorAll("#grid-form .tile")); }

  function setSelected(tile, on) {
    const box = tile.querySelector("input[type=checkbox]");
    if (box) box.checked = on;
    tile.classList.toggle("selected", on);
  }

  function updateGridCount() {
    const count = $("grid-selected-count");
    if (count) count.textContent = String(tiles().filter(function (t) { return t.classList.contains("selected"); }).length);
  }

  document.addEventListener("click", function (event) {
    const tile = event.target instanceof Element && event.target.closest("#grid-form .tile");
    if (!tile) return;
    if (event.target.closest("a")) return;
    event.preventDefault();
    const all = tiles();
    const index = all.indexOf(tile);
    if (event.shiftKey && gridAnchor !== null) {
      const lo = Math.min(gridAnchor, index), hi = Math.max(gridAnchor, index);
      all.forEach(function (t, i) { if (i >= lo && i <= hi) setSelected(t, true); });
    } else {
      setSelected(tile, !tile.classList.contains("selected"));
      gridAnchor = index;
    }
    tile.focus();
    updateGridCount();
  });

  function gridSubmit(action, reason) {
    const form = $("grid-form");
    if (!form) return;
    const chosen = tiles().filter(function (t) { return t.classList.contains("selected"); });
    if (!chosen.length) { notice("Select pairs first (click, shift-click, or space)."); return; }
    if (reason) $("grid-reason").value = reason;
    const button = action === "approve" ? $("grid-approve") : $("grid-reject");
    if (button) button.click();
  }

  function gridKey(event) {
    const target = event.target;
    if (typing(target)) {
      if (event.key === "Escape") target.blur();
      return;
    }
    const all = tiles();
    if (!all.length) return;
    let index = all.indexOf(document.activeElement);
    if (gridRejectMode) {
      gridRejectMode = false;
      $("grid-reject-hint").hidden = true;
      if (/^[1-9]$/.test(event.key)) {
        const option = document.querySelector('#grid-reason option[data-key="' + event.key + '"]');
        event.preventDefault();
        if (option) gridSubmit("reject", option.value);
      }
      return;
    }
    const perRow = Math.max(1, Math.round($("grid-form").querySelector(".tiles").clientWidth / all[0].offsetWidth));
    const move = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: perRow, ArrowUp: -perRow }[event.key];
    if (move !== undefined) {
      event.preventDefault();
      index = index < 0 ? 0 : Math.min(Math.max(index + move, 0), all.length - 1);
      all[index].focus();
      if (event.shiftKey) { setSelected(all[index], true); updateGridCount(); }
      return;
    }
    switch (event.key) {
      case " ": case "x":
        event.preventDefault();
        if (index >= 0) { setSelected(all[index], !all[index].classList.contains("selected")); gridAnchor = index; updateGridCount(); }
        break;
      case "*": event.preventDefault(); all.forEach(function (t) { setSelected(t, true); }); updateGridCount(); break;
      case "Escape": all.forEach(function (t) { setSelected(t, false); }); updateGridCount(); break;
      case "a": event.preventDefault(); gridSubmit("approve"); break;
      case "r":
        event.preventDefault();
        gridRejectMode = true;
        $("grid-reject-hint").hidden = false;
        break;
      default: break;
    }
  }

  // --- htmx hooks -------------------------------------------------------------------------
  document.addEventListener("htmx:afterRequest", function (event) {
    const xhr = event.detail.xhr;
    if (xhr && xhr.status >= 400 && xhr.getResponseHeader("HX-Reswap") === "none") {
      notice(messageOf(xhr));
    }
  });
  document.addEventListener("htmx:responseError", function (event) {
    const xhr = event.detail.xhr;
    if (xhr && xhr.getResponseHeader("HX-Reswap") !== "none") notice(messageOf(xhr));
  });
  document.addEventListener("htmx:sendError", function () {
    notice("The server could not be reached. Check the connection and try again.");
  });
  // A new pane arrives: leave reject mode, place the image, fetch the pair after it.
  // Only swaps of the pane itself count: the header's counts refresh on their own.
  document.addEventListener("htmx:afterSwap", function (event) {
    const target = event.detail && event.detail.target;
    const id = target && target.id;
    if (id === "grid-pane") { gridAnchor = null; gridRejectMode = false; updateGridCount(); return; }
    if (id !== "review-pane") return;
    setRejectMode(false);
    Viewer.attach();
    if (mode() === "queue") { Q.step = 0; Q.queuePane = null; prefetch(); }
  });
  document.addEventListener("DOMContentLoaded", function () {
    Viewer.attach();
    prefetch();
  });
})();
