// Tripwire human review: the admin page (GET /api/admin/stats). Names and reasons are set as text, never HTML.
"use strict";

(function () {
  const { $, el } = window.TripwireDOM;
  const DASH = "—";


  const isNum = (x) => typeof x === "number" && isFinite(x);
  function num(x, digits) {
    if (!isNum(x)) return DASH;
    if (digits === 0) return Math.round(x).toLocaleString("en");
    return x.toFixed(digits === undefined ? 2 : digits);
  }
  function pct(x) { return isNum(x) ? `${(100 * x).toFixed(1)}%` : DASH; }
  function age(seconds) {
    if (!isNum(seconds)) return DASH;
    if (seconds < 90) return `${Math.round(seconds)} s`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
    if (seconds < 2 * 86400) return `${(seconds / 3600).toFixed(1)} h`;
    return `${(seconds / 86400).toFixed(1)} d`;
  }
  const pick = (obj, ...keys) => { for (const k of keys) if (obj && obj[k] !== undefined) return obj[k]; return undefined; };

  // A mapping {name: {...}} or a list [{name, ...}] -> [[name, row], ...]
  function entries(value, nameKeys) {
    if (Array.isArray(value)) return value.map((row) => [String(pick(row, ...nameKeys) ?? DASH), row || {}]);
    if (value && typeof value === "object") return Object.entries(value).map(([k, v]) => [k, v || {}]);
    return [];
  }

  function table(id, headers, rows, emptyText) {
    const t = $(id);
    t.replaceChildren(el("thead", null, el("tr", null, headers.map(([h, cls]) => el("th", { class: cls, scope: "col", text: h })))));
    const body = el("tbody");
    if (!rows.length) body.append(el("tr", null, el("td", { class: "empty-row", colspan: headers.length, text: emptyText })));
    for (const cells of rows) body.append(el("tr", null, cells));
    t.append(body);
  }

  const cell = (text, cls) => el("td", { class: cls, text });
  // Kappa below 0.4 is weak agreement (Landis & Koch: fair or worse): marked for attention.
  const kappaCell = (x) => cell(num(x, 2), isNum(x) && x < 0.4 ? "num low" : "num");

  function render(stats) {
    const t = stats.throughput || {};
    const q = stats.queue || {};
    const cards = [
      ["Reviews total", num(pick(t, "reviews_total"), 0)],
      ["Last hour", num(pick(t, "reviews_last_hour"), 0)],
      ["Per hour (24 h)", num(pick(t, "reviews_per_hour_24h"), 1)],
      ["Median time / review", isNum(pick(t, "median_time_spent_s")) ? `${num(t.median_time_spent_s, 1)} s` : DASH],
      ["Pending", num(pick(q, "pending"), 0)],
      ["Adjudication", num(pick(q, "adjudication"), 0)],
      ["Resolved", num(pick(q, "resolved"), 0)],
      ["Golden", num(pick(q, "golden"), 0)],
      ["Oldest pending", age(pick(q, "oldest_pending_age_s"))],
      ["Median pending age", age(pick(q, "median_pending_age_s"))],
    ];
    $("cards").replaceChildren(...cards.map(([k, v]) => el("div", { class: "card" },
      el("div", { class: "k", text: k }), el("div", { class: "v", text: v }))));

    table("categories", [["Category"], ["Items", "num"], ["Agreement", "num"], ["Cohen's κ", "num"], ["Fleiss' κ", "num"]],
      entries(stats.categories, ["category", "name"]).map(([name, c]) => [
        cell(name), cell(num(pick(c, "items"), 0), "num"), cell(pct(pick(c, "percent_agreement", "agreement")), "num"),
        kappaCell(pick(c, "cohen_kappa", "cohen")), kappaCell(pick(c, "fleiss_kappa", "fleiss"))]),
      "No category has two reviews of one item yet.");

    table("reviewers", [["Reviewer"], ["Reviews", "num"], ["Resolved items", "num"], ["Agreement", "num"],
                        ["Golden", "num"], ["Golden exact", "num"], ["Golden labels", "num"]],
      entries(stats.reviewers, ["reviewer", "name"]).map(([name, r]) => [
        cell(name), cell(num(pick(r, "reviews"), 0), "num"), cell(num(pick(r, "items_compared"), 0), "num"),
        cell(pct(pick(r, "agreement")), "num"), cell(num(pick(r, "golden_reviews", "golden"), 0), "num"),
        cell(pct(pick(r, "golden_accuracy")), "num"), cell(pct(pick(r, "golden_label_accuracy")), "num")]),
      "No reviews yet.");

    const adjudication = Array.isArray(stats.adjudication) ? stats.adjudication : [];
    table("adjudication", [["Item"], ["Why"], ["Reviews", "num"], [""]],
      adjudication.map((a) => {
        const id = String(pick(a, "item_id", "id") ?? DASH);
        const reviews = pick(a, "reviews", "reviews_done");
        return [cell(id), cell(String(pick(a, "reason", "escalation") ?? DASH)),
          cell(Array.isArray(reviews) ? String(reviews.length) : num(reviews, 0), "num"),
          el("td", null, el("a", { href: "/?queue=adjudication", text: "Adjudicate" }))];
      }),
      "Nothing awaits adjudication.");
    $("updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  }

  function errorMessage(status, data) {
    if (data && data.error && data.error.message) return data.error.message;
    return `The server answered ${status}.`;
  }

  async function getJSON(path) {
    const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 401) { location.assign("login"); return null; }
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (!response.ok) throw new Error(errorMessage(response.status, data));
    return data;
  }

  async function load() {
    try {
      const [me, stats] = await Promise.all([getJSON("api/me"), getJSON("api/admin/stats")]);
      if (!me || !stats) return;
      $("me-name").textContent = me.name;
      $("me-role").textContent = me.role ? `(${me.role})` : "";
      render(stats);
      $("error").hidden = true;
      document.body.dataset.loaded = "true";
    } catch (error) {
      $("error").textContent = error.message || String(error);
      $("error").hidden = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("refresh").addEventListener("click", load);
    load();
  });
})();
