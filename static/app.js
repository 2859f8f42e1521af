// Quilt Curator: keyboard shortcuts on the review page and a notice for failed requests.
// No build step; htmx does the requests. Shortcuts are ignored while typing in a field.
(function () {
  "use strict";

  let rejectMode = false;

  function $(id) { return document.getElementById(id); }

  function typing(target) {
    return target instanceof HTMLElement &&
      (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
  }

  function setRejectMode(on) {
    rejectMode = on;
    const hint = $("reject-hint");
    const group = $("reject-group");
    if (hint) hint.hidden = !on;
    if (group) group.classList.toggle("armed", on);
  }

  function click(id) {
    const button = $(id);
    if (button && !button.disabled) button.click();
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
    click("btn-reject");
  }

  document.addEventListener("keydown", function (event) {
    if (!$("pair-form") || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (typing(target)) {
      if (event.key === "Escape") { target.blur(); setRejectMode(false); }
      // Enter in the comment field rejects; in other one-line fields it does nothing
      // (the form's first button is Approve: an implicit submit must not approve).
      if (event.key === "Enter" && target.tagName === "INPUT") {
        event.preventDefault();
        if (target.id === "reject-comment") click("btn-reject");
      }
      return;
    }
    if (rejectMode) {
      if (/^[1-9]$/.test(event.key)) { event.preventDefault(); rejectWith(event.key); }
      else if (event.key === "Escape") { setRejectMode(false); }
      return;
    }
    switch (event.key) {
      case "a": event.preventDefault(); click("btn-approve"); break;
      case "r": event.preventDefault(); setRejectMode(true); break;
      case "e": event.preventDefault(); if ($("caption")) $("caption").focus(); break;
      case "s": event.preventDefault(); click("btn-skip"); break;
      default: break;
    }
  });

  function notice(text) {
    const box = $("notice");
    if (!box) return;
    box.textContent = text;
    box.hidden = false;
    clearTimeout(notice.timer);
    notice.timer = setTimeout(function () { box.hidden = true; }, 8000);
  }

  function messageOf(xhr) {
    try {
      const doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      const node = doc.querySelector(".error-message");
      if (node) return node.textContent.trim();
    } catch (e) { /* fall through */ }
    return "The request failed (" + xhr.status + ").";
  }

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
  // A new pane arrives: leave reject mode and put the focus back on the page.
  document.addEventListener("htmx:afterSwap", function () { setRejectMode(false); });
})();
