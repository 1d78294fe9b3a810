// Tripwire human review: the queue page. One item at a time, keyboard first.
// Content under review is untrusted: it is only ever set with textContent / element properties, never as HTML.
"use strict";

(function () {
  const ACTION_KEYS = { allow: "a", review: "v", restrict: "s", block: "b" };
  const NEEDS_RATIONALE = new Set(["restrict", "block"]);

  const { $, el } = window.TripwireDOM;
  const params = new URLSearchParams(location.search);
  const state = {
    queue: params.get("queue") === "adjudication" ? "adjudication" : "review",
    me: null,
    categories: [],
    actions: ["allow", "review", "restrict", "block"],
    clauses: [],
    item: null,
    labels: {},
    action: null,
    clauseTouched: false,
    shownAt: 0,
    idempotencyKey: null,
    busy: false,
    revealed: false,
  };

  // -- small helpers ------------------------------------------------------------------------------

  function uuid() {
    if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    // crypto.randomUUID needs a secure context; getRandomValues does not (RFC 4122 version 4 by hand).
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function catName(c) { return typeof c === "string" ? c : (c && (c.name || c.id)) || String(c); }

  function fmtScore(x) { return typeof x === "number" && isFinite(x) ? x.toFixed(2) : "—"; }

  function fmtTime(t) {
    if (typeof t !== "number" || !isFinite(t)) return "—";
    return new Date(t * 1000).toLocaleString();
  }

  class SignedOut extends Error {}

  async function api(method, path, body) {
    const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);  // throws on a network failure
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (response.status === 401) {
      location.assign("login");
      throw new SignedOut(errorMessage(response.status, data));
    }
    return { status: response.status, ok: response.ok, data };
  }

  function errorMessage(status, data) {
    if (data && data.error && data.error.message) return data.error.message;
    if (data && typeof data.detail === "string") return data.detail;
    if (data && Array.isArray(data.detail)) return data.detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
    return `The server answered ${status}.`;
  }

  function showError(message) {
    const banner = $("error");
    banner.textContent = message;
    banner.hidden = false;
  }
  function clearError() { $("error").hidden = true; $("error").textContent = ""; }
  function showNotice(message) { $("notice").textContent = message; $("notice").hidden = !message; }

  function setView(view) {
    document.body.dataset.view = view;
    $("loading").hidden = view !== "loading";
    $("empty").hidden = view !== "empty";
    $("item").hidden = view !== "item";
  }

  // -- start ------------------------------------------------------------------------------------------
  async function start() {
    $("queue-name").textContent = state.queue === "adjudication" ? "· adjudication" : "· queue";
    if (state.queue === "adjudication") {
      document.title = "Tripwire adjudication";
      // Only pending items can be escalated: the adjudication queue is where escalations end up.
      $("escalate").hidden = true;
      document.querySelectorAll("[data-shortcut=escalate]").forEach((e) => { e.hidden = true; });
    }
    setView("loading");
    try {
      const [me, taxonomy] = await Promise.all([api("GET", "api/me"), api("GET", "api/taxonomy")]);
      if (!me.ok) throw new Error(errorMessage(me.status, me.data));
      if (!taxonomy.ok) throw new Error(errorMessage(taxonomy.status, taxonomy.data));
      state.me = me.data;
      $("me-name").textContent = me.data.name;
      $("me-role").textContent = me.data.role ? `(${me.data.role})` : "";
      $("admin-link").hidden = me.data.role !== "admin";
      state.categories = (taxonomy.data.categories || []).map(catName);
      if (Array.isArray(taxonomy.data.actions) && taxonomy.data.actions.length) state.actions = taxonomy.data.actions.map(catName);
      state.clauses = (taxonomy.data.clauses && taxonomy.data.clauses.length ? taxonomy.data.clauses : state.categories).map(catName);
      buildFilters(taxonomy.data);
      buildForm();
    } catch (error) {
      if (error instanceof SignedOut) return;
      setView("empty");
      $("empty-title").textContent = "Could not load the review page";
      $("empty-detail").textContent = "";
      showError(error.message || String(error));
      return;
    }
    await claim();
  }

  function buildFilters(taxonomy) {
    const select = $("filter-category");
    for (const c of state.categories) select.append(el("option", { value: c, text: c }));
    const markets = Array.isArray(taxonomy.markets) ? taxonomy.markets : [];
    for (const m of markets) $("markets").append(el("option", { value: catName(m) }));
    select.value = params.get("category") || "";
    $("filter-policy").value = params.get("policy") || "";
    $("filter-market").value = params.get("market") || "";
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      const next = new URLSearchParams();
      if (state.queue === "adjudication") next.set("queue", "adjudication");
      for (const [key, value] of Object.entries(filters())) next.set(key, value);
      const query = next.toString();
      history.replaceState(null, "", query ? `/?${query}` : "/");
      document.activeElement && document.activeElement.blur();
      claim();
    });
  }

  function filters() {
    const out = {};
    const category = $("filter-category").value;
    const policy = $("filter-policy").value.trim();
    const market = $("filter-market").value.trim().toUpperCase();
    if (category) out.category = category;
    if (policy) out.policy = policy;
    if (market) out.market = market;
    return out;
  }

  function buildForm() {
    const labels = $("labels");
    state.categories.forEach((category, i) => {
      labels.append(el("button", {
        type: "button", class: "toggle", "data-category": category, "aria-pressed": "false",
        title: i < 9 ? `Toggle ${category} (${i + 1})` : `Toggle ${category}`,
        onclick: () => toggleLabel(category),
      }, i < 9 ? el("kbd", { text: String(i + 1) }) : null, category));
    });
    const actions = $("actions");
    for (const action of state.actions) {
      const key = ACTION_KEYS[action];
      actions.append(el("button", {
        type: "button", class: "toggle", "data-action": action, "aria-pressed": "false",
        title: key ? `${action} (${key.toUpperCase()})` : action, onclick: () => chooseAction(action),
      }, action, key ? " " : null, key ? el("kbd", { text: key.toUpperCase() }) : null));
    }
    const clause = $("clause");
    clause.append(el("option", { value: "", text: "— none —" }));
    for (const c of state.clauses) clause.append(el("option", { value: c, text: c }));
    clause.addEventListener("change", () => { state.clauseTouched = true; });
    $("review-form").addEventListener("submit", (event) => { event.preventDefault(); submit(); });
    $("skip").addEventListener("click", skip);
    $("escalate").addEventListener("click", escalate);
    $("reload").addEventListener("click", () => claim());
    document.addEventListener("keydown", onKey);
  }

  // -- the queue ---------------------------------------------------------------------------------------
  async function claim() {
    if (state.busy) return;
    state.busy = true;
    setView("loading");
    try {
      const res = await api("POST", "api/claim", Object.assign({ queue: state.queue }, filters()));
      if (!res.ok) {
        setView("empty");
        $("empty-title").textContent = "Could not claim an item";
        $("empty-detail").textContent = "";
        showError(errorMessage(res.status, res.data));
        return;
      }
      const item = res.data && res.data.item;
      if (!item) {
        state.item = null;
        setView("empty");
        $("empty-title").textContent = state.queue === "adjudication" ? "Adjudication queue empty" : "Queue empty";
        $("empty-detail").textContent = Object.keys(filters()).length
          ? "No item matches these filters right now." : "Nothing is waiting for review right now.";
        return;
      }
      showItem(item, res.data.claim);
    } catch (error) {
      if (error instanceof SignedOut) return;
      setView("empty");
      $("empty-title").textContent = "Could not reach the server";
      $("empty-detail").textContent = "";
      showError(`Network error: ${error.message || error}`);
    } finally {
      state.busy = false;
    }
  }

  function showItem(item, claimInfo) {
    // The last item's rationale (submitted with Ctrl+Enter) may still hold the focus: the next item's
    // shortcut keys must choose labels and actions, not type into the new, empty rationale.
    if (document.activeElement instanceof HTMLElement && $("item").contains(document.activeElement)) {
      document.activeElement.blur();
    }
    state.item = item;
    state.labels = {};
    state.action = null;
    state.clauseTouched = false;
    state.idempotencyKey = null;
    state.revealed = false;
    $("item").dataset.itemId = item.item_id;

    // meta
    const meta = $("item-meta");
    // replaceChildren would show a null as the text "null": the optional parts are left out instead.
    meta.replaceChildren(...[
      el("span", null, "Item ", el("b", { text: item.item_id })),
      el("span", null, "Market ", el("b", { text: item.market || "any" })),
      el("span", null, "Model ", el("b", { text: item.model_version || "—" })),
      el("span", null, "Policy ", el("b", { text: item.policy_version || "—" })),
      el("span", null, "Model decision ", el("b", { class: `model-action act-${item.action}`, text: item.action || "—" })),
      // An appeal: the user's own reasons, next to the decision they contest (shown as text, never as HTML).
      item.meta && item.meta.appeal ? el("span", { class: "appeal" }, "Appeal ", el("b", { text: item.meta.appeal })) : null,
      claimInfo && claimInfo.expires_at ? el("span", null, "Claim until ", el("b", {
        text: new Date(claimInfo.expires_at * 1000).toLocaleTimeString() })) : null,
    ].filter(Boolean));

    // text
    const hasText = typeof item.text === "string" && item.text.length > 0;
    $("item-text").textContent = hasText ? item.text : "";
    $("item-text").hidden = !hasText;
    $("item-no-text").hidden = hasText;

    // media
    const media = $("item-media");
    media.replaceChildren();
    for (const [modality, url] of Object.entries(item.media || {})) {
      const box = mediaBox(modality, url, item);
      if (box) media.append(box);
    }

    renderHeard(item);
    renderScores(item);
    renderPrior(item.prior_reviews);
    const escalation = $("escalation");
    escalation.textContent = item.escalation ? `Why it is here: ${item.escalation}` : "";
    escalation.hidden = !item.escalation;

    // the form
    document.querySelectorAll("#labels .toggle, #actions .toggle").forEach((b) => b.setAttribute("aria-pressed", "false"));
    $("rationale").value = "";
    $("clause").value = "";
    updateHints();
    setView("item");
    state.shownAt = performance.now();
    window.scrollTo(0, 0);
  }

  function sameOrigin(url) {
    try { return new URL(url, location.href).origin === location.origin; } catch (_) { return false; }
  }

  // Boxes over the picture, placed in percent of the picture they were found in: nudity regions stay blurred
  // after the picture is revealed; the text OCR read is outlined, its words in the tooltip.
  function overlay(box, size, kind, title) {
    const [x0, y0, x1, y1] = box, [w, h] = size;
    const node = el("div", { class: `region ${kind}`, title });
    Object.assign(node.style, { left: `${100 * x0 / w}%`, top: `${100 * y0 / h}%`,
      width: `${100 * (x1 - x0) / w}%`, height: `${100 * (y1 - y0) / h}%` });
    return node;
  }

  function mediaBox(modality, url, item) {
    if (!sameOrigin(url)) return el("p", { class: "no-text", text: `${modality}: not shown (not served by this site)` });
    const wrap = el("div", { class: "media-item", "data-modality": modality });
    wrap.append(el("p", { class: "media-label", text: modality }));
    if (modality === "audio") {
      const audio = el("audio", { controls: true, preload: "metadata", src: url });
      audio.muted = true;
      audio.defaultMuted = true;
      wrap.append(audio);
      return wrap;
    }
    let node;
    if (modality === "image") {
      const img = el("img", { src: url, alt: "Item image (blurred until revealed)", class: "sensitive" });
      const regions = ((item && item.picture_regions) || []).map((r) =>
        overlay(r.box, r.size, "nudity", `nudity ${Number(r.score).toFixed(2)}: stays blurred`));
      const read = ((item && item.picture_text) || []).map((t) => overlay(t.box, t.size, "text", `read: ${t.text}`));
      node = el("span", { class: "picture" }, img, ...regions, ...read);
    }
    else if (modality === "video") {
      node = el("video", { controls: true, preload: "metadata", src: url, class: "sensitive" });
      node.muted = true;
      node.defaultMuted = true;
    } else {
      return el("p", { class: "no-text", text: `${modality}: no viewer` });
    }
    const box = el("div", { class: "media-box" }, node,
      el("button", { type: "button", class: "veil", onclick: () => setRevealed(!state.revealed) }, "Reveal ", el("kbd", { text: "R" })));
    node.addEventListener("click", (event) => {
      if (!state.revealed) { event.preventDefault(); setRevealed(true); }
    });
    wrap.append(box);
    return wrap;
  }

  // The item's player (audio, or a video's soundtrack) starts where the first flagged category was found; each
  // time in the transcript or the flagged list moves it there. It stays muted until the reviewer unmutes it.
  function player() {
    return document.querySelector("#item-media audio, #item-media video");
  }

  function seek(seconds) {
    const media = player();
    if (!media) return;
    const go = () => { media.currentTime = seconds; };
    if (media.readyState >= 1) go(); else media.addEventListener("loadedmetadata", go, { once: true });
  }

  function clock(seconds) {
    const whole = Math.floor(Number(seconds) || 0);
    const h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), s = whole % 60;
    const mm = h ? String(m).padStart(2, "0") : String(m);
    return `${h ? h + ":" : ""}${mm}:${String(s).padStart(2, "0")}`;
  }

  function timeButton(start, end, label) {
    return el("button", { type: "button", class: "seek", "data-start": String(start), onclick: () => seek(start) },
      `${clock(start)}–${clock(end)}`, label ? ` ${label}` : "");
  }

  function renderHeard(item) {
    const transcript = item.transcript || [];
    const flagged = item.flagged_at || [];
    $("item-heard").hidden = !transcript.length && !flagged.length;
    $("flagged-at").replaceChildren(...flagged.map((f) => timeButton(f.start_s, f.end_s, f.category)));
    $("transcript").replaceChildren(...transcript.map((segment) => el("li", {
      class: segment.top && flagged.some((f) => f.start_s === segment.start_s) ? "flagged" : null },
      timeButton(segment.start_s, segment.end_s), " ", el("span", { text: segment.text }))));
    if (flagged.length) seek(flagged[0].start_s);
  }

  function setRevealed(revealed) {
    state.revealed = revealed;
    document.querySelectorAll(".media-box").forEach((box) => {
      box.classList.toggle("revealed", revealed);
      const veil = box.querySelector(".veil");
      if (veil) veil.replaceChildren(revealed ? "Hide " : "Reveal ", el("kbd", { text: "R" }));
    });
  }

  function renderScores(item) {
    const scores = item.scores || {};
    const reasons = {};
    for (const reason of item.reasons || []) if (reason && reason.category) reasons[reason.category] = reason;
    const driven = item.driven_by || {};
    const rows = Object.entries(scores).sort((a, b) => (b[1] || 0) - (a[1] || 0));
    const table = $("scores");
    table.replaceChildren();
    for (const [category, score] of rows) {
      const reason = reasons[category];
      const width = Math.max(0, Math.min(1, Number(score) || 0)) * 100;
      const bar = el("div", { class: "bar", role: "img", "aria-label": `${category} ${fmtScore(score)}` },
        el("span"));
      bar.firstChild.style.width = `${width}%`;
      if (reason && typeof reason.threshold === "number") {
        const tick = el("i", { title: `threshold ${reason.threshold}` });
        tick.style.left = `calc(${Math.max(0, Math.min(1, reason.threshold)) * 100}% - 1px)`;
        bar.append(tick);
      }
      const why = [];
      if (reason) {
        why.push(`≥ ${fmtScore(reason.threshold)} → ${reason.action}`);
        if (reason.ground) why.push(reason.ground.replace(/_/g, " "));
      }
      if (driven[category]) why.push(`driven by ${driven[category]}`);
      table.append(el("tr", { class: reason ? `hit ${reason.action}` : null, "data-category": category },
        el("td", { class: "cat", text: category }),
        el("td", { class: "val", text: fmtScore(score) }),
        el("td", { class: "barcell" }, bar),
        el("td", { class: "why", text: why.join(" · ") })));
    }
    if (!rows.length) table.append(el("tr", null, el("td", { class: "why", text: "No scores." })));
  }

  function renderPrior(prior) {
    const panel = $("prior-panel");
    const table = $("prior-reviews");
    if (!Array.isArray(prior) || (!prior.length && state.queue !== "adjudication")) { panel.hidden = true; return; }
    panel.hidden = false;
    table.replaceChildren(el("tr", null, ["Reviewer", "Action", "Labels", "Clause", "Rationale", "When"].map(
      (h) => el("th", { text: h }))));
    if (!prior.length) table.append(el("tr", null, el("td", { colspan: "6", text: "No prior reviews." })));
    for (const review of prior) {
      const labels = Object.entries(review.labels || {}).filter(([, v]) => Number(v) === 1).map(([k]) => k);
      table.append(el("tr", null,
        el("td", { text: review.reviewer || review.reviewer_name || review.name || "—" }),
        el("td", { class: `act-${review.action}`, text: review.action || "—" }),
        el("td", { text: labels.length ? labels.join(", ") : "none" }),
        el("td", { text: review.policy_clause || "—" }),
        el("td", { text: review.rationale || review.note || "" }),
        el("td", { text: fmtTime(review.decided_at !== undefined ? review.decided_at : review.created_at) })));
    }
  }

  // -- the form ----------------------------------------------------------------------------------------
  function toggleLabel(category) {
    if (!state.item) return;
    state.labels[category] = state.labels[category] ? 0 : 1;
    const button = document.querySelector(`#labels .toggle[data-category="${CSS.escape(category)}"]`);
    if (button) button.setAttribute("aria-pressed", state.labels[category] ? "true" : "false");
    if (!state.clauseTouched) {
      const first = state.categories.find((c) => state.labels[c]);
      $("clause").value = first && state.clauses.includes(first) ? first : "";
    }
  }

  function chooseAction(action) {
    if (!state.item) return;
    state.action = action;
    document.querySelectorAll("#actions .toggle").forEach(
      (b) => b.setAttribute("aria-pressed", b.dataset.action === action ? "true" : "false"));
    updateHints();
  }

  function updateHints() {
    const needed = NEEDS_RATIONALE.has(state.action);
    const hint = $("rationale-hint");
    hint.textContent = needed ? `(required for ${state.action})` : "(required for restrict and block)";
    hint.classList.toggle("required", needed);
    $("rationale").required = needed;
  }

  function reviewBody() {
    const labels = {};
    for (const c of state.categories) labels[c] = state.labels[c] ? 1 : 0;
    return {
      item_id: state.item.item_id,
      labels,
      action: state.action,
      policy_clause: $("clause").value,
      rationale: $("rationale").value.trim(),
      time_spent_ms: Math.max(0, Math.round(performance.now() - state.shownAt)),
    };
  }

  async function submit() {
    if (!state.item || state.busy) return;
    if (!state.action) {
      showError("Choose an action first: A allow, V review, S restrict, B block.");
      return;
    }
    const body = reviewBody();
    if (NEEDS_RATIONALE.has(body.action) && !body.rationale) {
      showError(`A rationale is required for ${body.action}: write why (T) before submitting.`);
      return;
    }
    if (body.action !== "allow" && !body.policy_clause) {
      showError(`Choose the policy clause this ${body.action} rests on (or label a category).`);
      return;
    }
    // One key per submission: kept when the call fails on the way (the retry is the same submission),
    // replaced once the server has answered it.
    if (!state.idempotencyKey) state.idempotencyKey = uuid();
    body.idempotency_key = state.idempotencyKey;
    state.busy = true;
    $("submit").disabled = true;
    let res;
    try {
      res = await api("POST", "api/reviews", body);
    } catch (error) {
      if (!(error instanceof SignedOut)) showError(`Network error, nothing confirmed: submit again to retry (${error.message || error}).`);
      return;
    } finally {
      state.busy = false;
      $("submit").disabled = false;
    }
    if (res.ok) {
      clearError();
      const d = res.data || {};
      showNotice(`Saved review ${d.review_id !== undefined ? "#" + d.review_id : ""} on ${body.item_id}` +
        (d.item_status ? ` (item ${d.item_status})` : "") + (d.duplicate ? ", already recorded" : "") + ".");
      await claim();
    } else {
      if (res.status < 500) state.idempotencyKey = null;  // answered and refused: the next try is a new submission
      showError(errorMessage(res.status, res.data));
    }
  }

  async function itemCall(kind, body, done) {
    if (!state.item || state.busy) return;
    const id = state.item.item_id;
    state.busy = true;
    let res;
    try {
      res = await api("POST", `api/items/${encodeURIComponent(id)}/${kind}`, body);
    } catch (error) {
      if (!(error instanceof SignedOut)) showError(`Network error: ${error.message || error}`);
      return;
    } finally {
      state.busy = false;
    }
    if (!res.ok) { showError(errorMessage(res.status, res.data)); return; }
    clearError();
    showNotice(`${done} ${id}.`);
    await claim();
  }

  function skip() { return itemCall("skip", {}, "Skipped"); }
  function escalate() { return itemCall("escalate", { note: $("rationale").value.trim() }, "Escalated"); }

  // -- keyboard ----------------------------------------------------------------------------------------
  function onKey(event) {
    const target = event.target;
    const rationale = $("rationale");
    if (target === rationale) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); submit(); }
      else if (event.key === "Escape") { event.preventDefault(); rationale.blur(); }
      return;
    }
    if (target instanceof Element && target.matches("input, select, textarea, [contenteditable]")) {
      if (event.key === "Escape") target.blur();
      return;
    }
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    // Enter / Space on a button outside the label and action groups (skip, sign out, reveal...) is that button's.
    if (target instanceof Element && target.closest("button, a") && !target.closest("#labels, #actions")
        && (event.key === "Enter" || event.key === " ")) return;
    if (document.body.dataset.view !== "item") return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (/^[1-9]$/.test(key)) {
      const category = state.categories[Number(key) - 1];
      if (category) { event.preventDefault(); toggleLabel(category); }
      return;
    }
    if (key === "Enter") { event.preventDefault(); submit(); return; }
    if (event.repeat) return;
    const action = Object.keys(ACTION_KEYS).find((a) => ACTION_KEYS[a] === key && state.actions.includes(a));
    if (action) { event.preventDefault(); chooseAction(action); return; }
    switch (key) {
      case "r": event.preventDefault(); setRevealed(!state.revealed); break;
      case "t": event.preventDefault(); rationale.focus(); break;
      case "k": event.preventDefault(); skip(); break;
      case "e": if (state.queue !== "adjudication") { event.preventDefault(); escalate(); } break;
      default: break;
    }
  }

  document.addEventListener("DOMContentLoaded", start);
})();
