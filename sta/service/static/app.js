// STA search page: plain JS over the query service's API.
// The API key (or a session token from email + password) is kept in
// localStorage and sent in X-API-Key with every request (thumbnails and
// downloads too: they are fetched and shown/saved as blob URLs, since an
// <img src> or a link cannot carry a header). The search lives in the
// address (shareable URLs); the selection (cart) survives a reload.
"use strict";

const KEY_STORE = "sta_api_key";
const SEL_STORE = "sta_selection";
const LANG_STORE = "sta_lang";
const PAGE_SIZE = 10;
const AGE_TOP = 100; // the slider's top means "100 or more": no upper bound

let lang = localStorage.getItem(LANG_STORE) || "es"; // Spanish first (the product's language), pt/en on demand
if (!I18N[lang]) lang = "es";
function t(key, vars = {}) {
  const s = (I18N[lang] && I18N[lang][key]) || I18N.es[key] || key;
  return s.replace(/\{(\w+)\}/g, (_m, k) => (vars[k] === undefined ? "" : vars[k]));
}
const names = () => NAMES_I18N[lang] || NAMES_I18N.es;

const FACETS = ["sex", "modality", "body_region", "label", "label_certainty", "characteristic", "country", "partner"];
const ADVANCED = ["body_region", "label", "label_certainty", "characteristic", "country", "partner"];
const EMPTY = { q: "", sex: [], modality: [], body_region: [], label: [], label_certainty: [], characteristic: [],
  country: [], partner: [], manufacturer: "", age_min: "", age_max: "", thickness_min: "", thickness_max: "",
  date_from: "", date_to: "", sort: "date_desc", page: 1 };
const THICK_TOP = 10; // the slider's top means "10 mm or more"
const state = structuredClone(EMPTY);
let me = null;
let partnerNames = {};
let concepts = {};
let lastResponse = null;
let searchSeq = 0;
let selection = loadSelection();
let exportsTimer = null;

const $ = (sel) => document.querySelector(sel);
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
const fmt = (n) => Number(n).toLocaleString("en-US");

function applyI18n() {
  document.documentElement.lang = lang;
  $("#lang").value = lang;
  for (const e of document.querySelectorAll("[data-i18n]")) e.textContent = t(e.dataset.i18n);
  for (const e of document.querySelectorAll("[data-i18n-placeholder]")) e.placeholder = t(e.dataset.i18nPlaceholder);
  for (const e of document.querySelectorAll("[data-i18n-aria]")) e.setAttribute("aria-label", t(e.dataset.i18nAria));
  document.title = `STA · ${t("tab_studies")}`;
  $("#advanced-toggle").textContent = t($("#advanced").hidden ? "advanced" : "hide_advanced");
  renderSuggestions();
}

function partnerName(id) { return partnerNames[id] || id; }
function conceptName(c) {
  const score = /^(birads|tirads)_(\d+)$/.exec(c);
  if (score) return `${score[1] === "birads" ? "BI-RADS" : "TI-RADS"} ${score[2]}`;
  if (c === "birads") return "BI-RADS";
  const k = concepts[c];
  return (k && (k.label[lang] || k.label.es)) || c;
}
function labelName(facet, value) {
  const N = names();
  if (facet === "label") return conceptName(value);
  if (facet === "label_certainty") {
    const [c, cert] = value.split(":");
    return `${conceptName(c)} (${t("cert_" + cert)})`;
  }
  if (facet === "characteristic") {
    const [field, v] = value.split(":");
    return `${field.replace(/_/g, " ")}: ${v}`;
  }
  if (facet === "age") return t("years", { n: value });
  if (facet === "sex") return t("sex_" + value) || value;
  if (facet === "partner") return partnerName(value);
  return (N[facet] && N[facet][value]) || value;
}

// ---------- API ----------
function apiKey() { return localStorage.getItem(KEY_STORE); }

async function api(path, opts = {}) {
  const headers = { "X-API-Key": apiKey() || "", ...(opts.body ? { "Content-Type": "application/json" } : {}) };
  const res = await fetch(path, { ...opts, headers });
  if (res.status === 401) { showLogin(t("bad_key")); throw new Error("401"); }
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail; } catch (e) { /* not JSON */ }
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return res;
}

// ---------- the address holds the search ----------
function searchParams(forApi) {
  const p = new URLSearchParams();
  if (state.q.trim()) p.set("q", state.q.trim());
  for (const f of FACETS) for (const v of state[f]) p.append(f, v);
  if (state.manufacturer) p.append("manufacturer", state.manufacturer);
  if (state.age_min !== "" && Number(state.age_min) > 0) p.set("age_min", state.age_min);
  if (state.age_max !== "" && Number(state.age_max) < AGE_TOP) p.set("age_max", state.age_max);
  if (state.thickness_min !== "" && Number(state.thickness_min) > 0) p.set("thickness_min", state.thickness_min);
  if (state.thickness_max !== "" && Number(state.thickness_max) < THICK_TOP) p.set("thickness_max", state.thickness_max);
  if (state.date_from) p.set("date_from", state.date_from);
  if (state.date_to) p.set("date_to", state.date_to);
  if (state.sort !== "date_desc" || forApi) p.set("sort", state.sort);
  if (state.page !== 1 || forApi) p.set("page", state.page);
  if (forApi) p.set("page_size", PAGE_SIZE);
  return p;
}
function queryString() { return searchParams(true).toString(); }
function writeAddress() {
  const qs = searchParams(false).toString();
  history.replaceState(null, "", qs ? `?${qs}` : location.pathname);
}
function readAddress() {
  const p = new URLSearchParams(location.search);
  Object.assign(state, structuredClone(EMPTY));
  state.q = p.get("q") || "";
  for (const f of FACETS) state[f] = p.getAll(f);
  state.manufacturer = p.get("manufacturer") || "";
  state.age_min = p.get("age_min") || "";
  state.age_max = p.get("age_max") || "";
  state.thickness_min = p.get("thickness_min") || "";
  state.thickness_max = p.get("thickness_max") || "";
  state.date_from = p.get("date_from") || "";
  state.date_to = p.get("date_to") || "";
  state.sort = p.get("sort") || "date_desc";
  state.page = Number(p.get("page") || 1);
  syncInputs();
  if (state.date_from || state.date_to || ADVANCED.some((f) => state[f].length)) toggleAdvanced(true);
}
function syncInputs() {
  $("#q").value = state.q;
  $("#age-min").value = state.age_min === "" ? 0 : state.age_min;
  $("#age-max").value = state.age_max === "" ? AGE_TOP : state.age_max;
  $("#thickness-min").value = state.thickness_min === "" ? 0 : state.thickness_min;
  $("#thickness-max").value = state.thickness_max === "" ? THICK_TOP : state.thickness_max;
  $("#date-from").value = state.date_from;
  $("#date-to").value = state.date_to;
  $("#sort").value = state.sort;
  renderAgeLabel();
  renderThicknessLabel();
}

// ---------- login and sign-up ----------
function showLogin(message) {
  $("#signup").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
  $("#api-key-input").focus();
}

async function checkKey() {
  const res = await api("/api/me");
  me = await res.json();
  $("#account").textContent = t("account_line", { customer: me.customer, plan: me.plan, regions: me.regions.join(", ") || t("none") });
  $("#logout").hidden = false;
  $("#tab-sql").hidden = !["pro", "enterprise"].includes(me.plan);
  try { partnerNames = await (await api("/api/partners")).json(); } catch (e) { partnerNames = {}; }
  try { concepts = (await (await fetch("/api/vocabulary")).json()).concepts; } catch (e) { concepts = {}; }
  return me;
}

async function enter() {
  await checkKey();
  $("#login").hidden = true;
  $("#signup").hidden = true;
  if (typeof pending !== "undefined" && pending && location.pathname === "/descarga") downloadFromEmail();
  else search();
}

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  localStorage.setItem(KEY_STORE, $("#api-key-input").value.trim());
  try { await enter(); $("#api-key-input").value = ""; } catch (e) { if (e.message !== "401") $("#login-error").textContent = e.message; }
});
$("#email-login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const res = await fetch("/api/session", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email: $("#login-email").value.trim(), password: $("#login-password").value }) });
  if (!res.ok) { $("#login-error").textContent = t("wrong_login"); return; }
  localStorage.setItem(KEY_STORE, (await res.json()).token);
  $("#login-password").value = "";
  try { await enter(); } catch (e) { /* shown by api() */ }
});
$("#logout").addEventListener("click", async () => {
  const key = apiKey();
  if (key && key.startsWith("sess_")) { try { await api("/api/session", { method: "DELETE" }); } catch (e) { /* ended anyway */ } }
  localStorage.removeItem(KEY_STORE);
  me = null;
  showLogin();
});

async function showSignup() {
  $("#login").hidden = true;
  $("#signup").hidden = false;
  $("#signup-done").hidden = true;
  $("#signup-error").textContent = "";
  const box = $("#su-regions");
  box.textContent = "";
  const regions = (await (await fetch("/api/regions")).json()).regions;
  for (const r of regions) {
    box.append(el("label", { class: "opt" }, el("input", { type: "checkbox", name: "region", value: r, checked: true }),
      names().country[r] || r));
  }
  $("#su-name").focus();
}
$("#to-signup").addEventListener("click", showSignup);
$("#signup-cancel").addEventListener("click", () => showLogin());
for (const r of document.querySelectorAll("input[name=plan]")) {
  r.addEventListener("change", () => { $("#su-message-box").hidden = r.value === "standard" && r.checked; });
}
$("#signup-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const plan = document.querySelector("input[name=plan]:checked").value;
  const regions = [...document.querySelectorAll("input[name=region]:checked")].map((x) => x.value);
  const res = await fetch("/api/signup", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: $("#su-name").value.trim(), email: $("#su-email").value.trim(),
      password: $("#su-password").value, plan, regions, message: $("#su-message").value || null }) });
  const body = await res.json();
  if (!res.ok) {
    $("#signup-error").textContent = typeof body.detail === "string" ? body.detail : body.detail.map((d) => d.msg).join("; ");
    return;
  }
  localStorage.setItem(KEY_STORE, body.api_key);
  $("#signup-key").textContent = body.api_key;
  $("#signup-request").textContent = body.request ? t("request_" + body.request.plan, { id: body.request.id }) : "";
  $("#signup-done").hidden = false;
});
$("#signup-continue").addEventListener("click", () => enter().catch(() => {}));

// ---------- search ----------
async function search() {
  const seq = ++searchSeq;
  writeAddress();
  $("#error").textContent = "";
  $("#count").textContent = t("searching");
  try {
    const res = await api("/api/studies?" + queryString());
    const data = await res.json();
    if (seq !== searchSeq) return; // a newer search was started meanwhile
    lastResponse = data;
    renderCount(data);
    renderResults(data.results, $("#results"));
    renderFacets(data.facets);
    renderPager(data);
    renderActive();
  } catch (e) {
    if (seq === searchSeq && e.message !== "401") {
      $("#error").textContent = t("search_error") + e.message;
      $("#count").textContent = "";
    }
  }
}
function searchFromStart() { state.page = 1; search(); }

function renderCount(d) {
  const first = d.total ? (d.page - 1) * d.page_size + 1 : 0;
  const last = Math.min(d.total, d.page * d.page_size);
  $("#count").textContent = t("showing", { first: fmt(first), last: fmt(last), total: fmt(d.total) });
}

function chipsFor(s) {
  const chips = [];
  for (const l of s.labels) chips.push(labelName("label", l));
  if (s.country) chips.push(names().country[s.country] || s.country);
  chips.push(partnerName(s.partner_id));
  if (s.manufacturer) chips.push(s.manufacturer);
  if (s.sex) chips.push(labelName("sex", s.sex));
  if (s.age !== null && s.age !== undefined) chips.push(t("years", { n: s.age }));
  if (s.modality) chips.push(s.modality);
  return el("div", { class: "chips tags" }, chips.map((c) => el("span", { class: "chip" }, c)));
}

function thumbBox(url) {
  const box = el("div", { class: "thumb" }, url ? t("loading") : t("no_image"));
  if (url) {
    api(url).then((r) => r.blob()).then((b) => {
      box.textContent = "";
      box.append(el("img", { src: URL.createObjectURL(b), alt: t("study_description") }));
    }).catch(() => { box.textContent = t("no_image"); });
  }
  return box;
}

function inSelection(uid) { return selection.some((x) => x.study_uid === uid); }
function addButton(s) {
  const b = el("button", { class: "add" + (inSelection(s.study_uid) ? " added" : ""), type: "button" },
    inSelection(s.study_uid) ? t("added") : t("add"));
  b.addEventListener("click", () => {
    toggleSelection(s);
    const now = inSelection(s.study_uid);
    b.textContent = now ? t("added") : t("add");
    b.classList.toggle("added", now);
  });
  return b;
}

function card(s) {
  const more = el("div", { class: "more", hidden: true },
    el("h4", {}, t("full_report")), el("pre", {}, s.report_text || t("no_report")),
    el("h4", {}, t("dicom_tags")),
    el("table", {}, Object.entries(s.tags).map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, v)))));
  const expand = el("button", { class: "link expand", type: "button" }, t("expand"));
  expand.addEventListener("click", () => { more.hidden = !more.hidden; expand.textContent = more.hidden ? t("expand") : t("collapse"); });
  return el("article", { class: "card", "data-study": s.study_uid },
    el("div", { class: "card-head" },
      addButton(s),
      el("span", {}, t("patient_label"),
        el("a", { href: "#", class: "patient-link", "data-token": s.patient_token,
          onclick: (ev) => { ev.preventDefault(); openPatient(s.patient_token); } }, s.patient_token)),
      el("span", {}, t("study_label"), el("code", { class: "study-id" }, s.study_uid)),
      el("span", {}, s.study_date || "")),
    el("div", { class: "card-body" },
      el("div", {},
        el("h4", {}, t("study_description")),
        el("p", { class: "desc" }, [s.study_description, labelName("body_region", s.body_region)].filter(Boolean).join(" · ")),
        el("p", { class: "excerpt" }, s.report_excerpt || t("no_report")),
        chipsFor(s)),
      thumbBox(s.thumbnail_url)),
    expand, more);
}

function renderResults(results, into) {
  into.textContent = "";
  if (!results.length) into.append(el("p", { class: "empty" }, t("no_results")));
  for (const s of results) into.append(card(s));
}

function renderFacets(facets) {
  for (const f of FACETS) {
    const box = document.querySelector(`#f-${f} .opts`);
    if (!box) continue;
    const counts = facets[f] || {};
    const values = new Set([...Object.keys(counts), ...state[f]]);
    // Characterization and certainty only where the store has them.
    if (f === "characteristic" || f === "label_certainty") box.closest("fieldset").hidden = !values.size;
    box.textContent = "";
    for (const v of values) {
      const id = `opt-${f}-${v}`.replace(/[^A-Za-z0-9_-]/g, "_");
      const cb = el("input", { type: "checkbox", id, value: v, checked: state[f].includes(v) });
      cb.addEventListener("change", () => {
        state[f] = cb.checked ? [...state[f], v] : state[f].filter((x) => x !== v);
        searchFromStart();
      });
      box.append(el("label", { class: "opt", for: id }, cb, labelName(f, v), el("span", { class: "n" }, fmt(counts[v] || 0))));
    }
  }
  const ages = document.querySelector(".ages");
  ages.textContent = "";
  for (const [v, n] of Object.entries(facets.age || {}).sort((a, b) => parseInt(a[0], 10) - parseInt(b[0], 10))) {
    ages.append(el("div", { class: "opt" }, labelName("age", v), el("span", { class: "n" }, fmt(n))));
  }
  const sel = $("#f-manufacturer");
  const keep = state.manufacturer;
  sel.textContent = "";
  sel.append(el("option", { value: "" }, t("all")));
  const makers = new Set([...Object.keys(facets.manufacturer || {}), ...(keep ? [keep] : [])]);
  for (const m of makers) sel.append(el("option", { value: m, selected: m === keep }, `${m} (${fmt((facets.manufacturer || {})[m] || 0)})`));
  // Slice thickness is filterable only when the store records it.
  const hasThickness = !!(facets.slice_thickness && Object.keys(facets.slice_thickness).length);
  for (const id of ["#thickness-min", "#thickness-max"]) $(id).disabled = !hasThickness;
  $("#thickness-note").hidden = hasThickness;
}

function chip(text, onRemove) {
  return el("button", { class: "chip x", type: "button", title: t("remove_filter"), onclick: onRemove }, `X ${text}`);
}
function renderActive() {
  const box = $("#active-filters");
  box.textContent = "";
  if (state.q.trim()) box.append(chip(t("keyword_chip", { q: state.q.trim() }), () => { state.q = ""; $("#q").value = ""; searchFromStart(); }));
  for (const f of FACETS) for (const v of state[f]) {
    box.append(chip(labelName(f, v), () => { state[f] = state[f].filter((x) => x !== v); searchFromStart(); }));
  }
  if ((state.age_min !== "" && Number(state.age_min) > 0) || (state.age_max !== "" && Number(state.age_max) < AGE_TOP)) {
    box.append(chip(t("age_chip", { min: state.age_min || 0, max: Number(state.age_max || AGE_TOP) >= AGE_TOP ? "100+" : state.age_max }),
      () => { state.age_min = ""; state.age_max = ""; syncInputs(); searchFromStart(); }));
  }
  if (state.date_from || state.date_to) {
    box.append(chip(t("date_chip", { from: state.date_from || "…", to: state.date_to || "…" }),
      () => { state.date_from = ""; state.date_to = ""; syncInputs(); searchFromStart(); }));
  }
  if ((state.thickness_min !== "" && Number(state.thickness_min) > 0) || (state.thickness_max !== "" && Number(state.thickness_max) < THICK_TOP)) {
    box.append(chip(t("thickness_chip", { min: state.thickness_min || 0, max: Number(state.thickness_max || THICK_TOP) >= THICK_TOP ? "10+" : state.thickness_max }),
      () => { state.thickness_min = ""; state.thickness_max = ""; syncInputs(); searchFromStart(); }));
  }
  if (state.manufacturer) box.append(chip(t("manufacturer_chip", { m: state.manufacturer }), () => { state.manufacturer = ""; searchFromStart(); }));
}

function renderSuggestions() {
  const box = $("#suggestions");
  box.textContent = "";
  for (const [kind, value, text] of names().suggest) {
    box.append(el("button", { class: "chip suggest", type: "button", "data-kind": kind, "data-value": value, onclick: () => {
      if (kind === "label") { if (!state.label.includes(value)) state.label = [...state.label, value]; }
      else { state.q = value; $("#q").value = value; }
      searchFromStart();
    } }, text));
  }
}

function renderPager(d) {
  const nav = $("#pager");
  nav.textContent = "";
  const pages = Math.max(1, Math.ceil(d.total / d.page_size));
  const go = (p) => { state.page = p; search(); window.scrollTo(0, 0); };
  nav.append(el("button", { type: "button", disabled: d.page <= 1, onclick: () => go(d.page - 1) }, t("previous")));
  const from = Math.max(1, d.page - 3), to = Math.min(pages, from + 6);
  for (let p = from; p <= to; p++) {
    nav.append(el("button", { type: "button", class: p === d.page ? "current" : null, onclick: () => go(p) }, p));
  }
  nav.append(el("button", { type: "button", disabled: d.page >= pages, onclick: () => go(d.page + 1) }, t("next")));
}

// ---------- selection (cart) and export ----------
function loadSelection() {
  try { return JSON.parse(localStorage.getItem(SEL_STORE) || "[]"); } catch (e) { return []; }
}
function saveSelection() { localStorage.setItem(SEL_STORE, JSON.stringify(selection)); renderSelection(); }
function toggleSelection(s) {
  if (inSelection(s.study_uid)) selection = selection.filter((x) => x.study_uid !== s.study_uid);
  else selection.push({ study_uid: s.study_uid, patient_token: s.patient_token, region: s.region, modality: s.modality, study_date: s.study_date });
  saveSelection();
}
function renderSelection() {
  $("#sel-count").textContent = selection.length;
  const ul = $("#sel-list");
  ul.textContent = "";
  for (const s of selection) {
    ul.append(el("li", {}, el("span", {}, `${s.modality || ""} ${s.study_uid}`),
      el("button", { type: "button", class: "link", title: t("remove"), onclick: () => {
        selection = selection.filter((x) => x.study_uid !== s.study_uid); saveSelection();
        if (lastResponse) renderResults(lastResponse.results, $("#results"));
      } }, "×")));
  }
}
$("#sel-export").addEventListener("click", () => {
  $("#export-form").hidden = !$("#export-form").hidden;
  $("#export-msg").textContent = selection.length ? "" : t("empty_cart");
});
$("#export-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!selection.length) { $("#export-msg").textContent = t("empty_cart"); return; }
  const format = document.querySelector("input[name=format]:checked").value;
  try {
    const res = await api("/api/exports", { method: "POST",
      body: JSON.stringify({ study_uids: selection.map((s) => s.study_uid), format, parquet: $("#export-parquet").checked }) });
    const { id } = await res.json();
    $("#export-msg").textContent = t("export_ordered", { id });
    selection = [];
    saveSelection();
    if (lastResponse) renderResults(lastResponse.results, $("#results"));
    showTab("exports");
  } catch (e) {
    if (e.message !== "401") $("#export-msg").textContent = e.message;
  }
});
$("#sel-clear").addEventListener("click", () => { selection = []; saveSelection(); if (lastResponse) renderResults(lastResponse.results, $("#results")); });

async function renderExports() {
  clearTimeout(exportsTimer);
  const body = $("#exports-table tbody");
  let orders = [];
  try { orders = await (await api("/api/exports")).json(); } catch (e) { return; }
  body.textContent = "";
  for (const o of orders) {
    const action = o.status === "ready"
      ? el("button", { type: "button", class: "download", onclick: (ev) => download(o.id, ev.target) }, t("download")) : "";
    body.append(el("tr", { "data-order": o.id, "data-status": o.status },
      el("td", {}, el("code", {}, o.id)), el("td", {}, o.format.toUpperCase()), el("td", { class: "status" }, t("st_" + o.status)),
      el("td", {}, el("progress", { max: 1, value: o.progress }), ` ${Math.round(o.progress * 100)} %`),
      el("td", {}, o.n_studies ?? "–"), el("td", {}, action)));
  }
  if (orders.some((o) => o.status === "queued" || o.status === "running") && !$("#view-exports").hidden) {
    exportsTimer = setTimeout(renderExports, 1500);
  }
}
async function download(orderId, button) {
  button.textContent = t("downloading");
  try {
    const st = await (await api(`/api/exports/${orderId}`)).json();
    const blob = await (await api(st.download_url)).blob();
    const a = el("a", { href: URL.createObjectURL(blob), download: `sta-export-${orderId}.zip` });
    document.body.append(a); a.click(); a.remove();
  } finally { button.textContent = t("download"); }
}

// ---------- patients ----------
async function openPatient(token) {
  for (const v of ["#view-results", "#view-patients", "#view-exports", "#view-sql"]) $(v).hidden = true;
  $("#view-patient").hidden = false;
  $("#p-token").textContent = token;
  $("#p-summary").textContent = t("loading");
  const list = $("#timeline");
  list.textContent = "";
  try {
    const res = await api(`/api/patients/${encodeURIComponent(token)}`);
    const p = await res.json();
    const sex = p.sex ? labelName("sex", p.sex) : t("sex_unknown");
    $("#p-summary").textContent = t("patient_summary", { n: p.n_studies, first: p.first_study_date, last: p.last_study_date, sex,
      partners: p.partners.map(partnerName).join(", "), regions: p.regions.map((r) => names().country[r] || r).join(", ") });
    for (const s of p.studies) {
      list.append(el("li", { class: "event", "data-study": s.study_uid },
        el("div", { class: "card-head" }, el("span", { class: "when" }, s.study_date || "¿?"),
          el("span", {}, `${s.modality || ""} · ${labelName("body_region", s.body_region)}`),
          el("span", {}, `${partnerName(s.partner_id)} (${names().country[s.country] || s.country})`), addButton(s)),
        el("div", { class: "card-body" },
          el("div", {}, el("p", { class: "desc" }, s.study_description || ""),
            el("p", { class: "excerpt" }, s.report_excerpt || t("no_report")), chipsFor(s)),
          thumbBox(s.thumbnail_url))));
    }
  } catch (e) {
    if (e.message !== "401") $("#p-summary").textContent = t("patient_not_found") + e.message;
  }
}
$("#back").addEventListener("click", () => showTab("studies"));
$("#patient-form").addEventListener("submit", (ev) => { ev.preventDefault(); openPatient($("#patient-token").value.trim().toLowerCase()); });

function renderPatientModalities() {
  const box = $("#p-modalities");
  if (box.children.length) return;
  for (const m of ["CR", "DX", "CT", "MR", "US", "MG", "PT"]) {
    box.append(el("label", { class: "opt" }, el("input", { type: "checkbox", name: "pmod", value: m }), m));
  }
}
$("#patients-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const p = new URLSearchParams();
  for (const c of document.querySelectorAll("input[name=psex]:checked")) p.append("sex", c.value);
  for (const c of document.querySelectorAll("input[name=pmod]:checked")) p.append("modality", c.value);
  if ($("#p-age-min").value) p.set("age_min", $("#p-age-min").value);
  if ($("#p-age-max").value) p.set("age_max", $("#p-age-max").value);
  if ($("#p-min-studies").value) p.set("min_studies", $("#p-min-studies").value);
  if ($("#p-min-years").value) p.set("min_years", $("#p-min-years").value);
  p.set("page_size", 50);
  for (const v of ["#view-results", "#view-patient", "#view-exports", "#view-sql"]) $(v).hidden = true;
  $("#view-patients").hidden = false;
  const body = $("#patients-table tbody");
  body.textContent = "";
  $("#p-count").textContent = t("searching");
  try {
    const data = await (await api("/api/patients?" + p.toString())).json();
    $("#p-count").textContent = t("patients_found", { total: fmt(data.total) });
    for (const x of data.patients) {
      body.append(el("tr", { "data-token": x.patient_token },
        el("td", {}, el("a", { href: "#", class: "patient-link", onclick: (e) => { e.preventDefault(); openPatient(x.patient_token); } }, x.patient_token)),
        el("td", {}, x.sex ? labelName("sex", x.sex) : "–"), el("td", {}, x.age ?? "–"), el("td", { class: "n-studies" }, x.n_studies),
        el("td", {}, x.modalities.join(", ")), el("td", {}, `${x.first_study_date} – ${x.last_study_date}`),
        el("td", {}, x.partners.map(partnerName).join(", "))));
    }
  } catch (e) { if (e.message !== "401") $("#p-count").textContent = e.message; }
});

// ---------- SQL (Pro) ----------
$("#sql-run").addEventListener("click", async () => {
  $("#sql-error").textContent = "";
  $("#sql-info").textContent = t("searching");
  const table = $("#sql-result");
  table.textContent = "";
  try {
    const r = await (await api("/api/sql", { method: "POST", body: JSON.stringify({ sql: $("#sql-input").value }) })).json();
    $("#sql-info").textContent = t("sql_rows", { n: fmt(r.row_count), ms: r.elapsed_ms }) + (r.truncated ? t("sql_truncated") : "");
    table.append(el("thead", {}, el("tr", {}, r.columns.map((c) => el("th", {}, c)))));
    table.append(el("tbody", {}, r.rows.map((row) => el("tr", {}, row.map((v) => el("td", {}, v === null ? "NULL" : typeof v === "object" ? JSON.stringify(v) : v))))));
  } catch (e) {
    $("#sql-info").textContent = "";
    if (e.message !== "401") $("#sql-error").textContent = e.message;
  }
});

// ---------- tabs and filter inputs ----------
function showTab(which) {
  for (const tab of ["studies", "patients", "exports", "sql"]) $(`#tab-${tab}`).classList.toggle("active", which === tab);
  $("#filters").hidden = which !== "studies";
  $("#patient-search").hidden = which !== "patients";
  $("#view-results").hidden = which !== "studies";
  $("#view-patient").hidden = true;
  $("#view-patients").hidden = which !== "patients";
  $("#view-exports").hidden = which !== "exports";
  $("#view-sql").hidden = which !== "sql";
  if (which === "patients") renderPatientModalities();
  if (which === "exports") renderExports();
}
$("#tab-studies").addEventListener("click", () => showTab("studies"));
$("#tab-patients").addEventListener("click", () => showTab("patients"));
$("#tab-exports").addEventListener("click", () => showTab("exports"));
$("#tab-sql").addEventListener("click", () => showTab("sql"));

function toggleAdvanced(open) {
  const panel = $("#advanced");
  panel.hidden = open === undefined ? !panel.hidden : !open;
  $("#advanced-toggle").setAttribute("aria-expanded", String(!panel.hidden));
  $("#advanced-toggle").textContent = t(panel.hidden ? "advanced" : "hide_advanced");
}
$("#advanced-toggle").addEventListener("click", () => toggleAdvanced());

function renderThicknessLabel() {
  const lo = Number($("#thickness-min").value), hi = Number($("#thickness-max").value);
  $("#thickness-label").textContent = lo <= 0 && hi >= THICK_TOP ? t("any_thickness") : `${lo}–${hi >= THICK_TOP ? "10+" : hi} mm`;
}
for (const id of ["#thickness-min", "#thickness-max"]) {
  $(id).addEventListener("input", () => {
    let lo = Number($("#thickness-min").value), hi = Number($("#thickness-max").value);
    if (lo > hi) { if (id === "#thickness-min") $("#thickness-max").value = hi = lo; else $("#thickness-min").value = lo = hi; }
    state.thickness_min = lo > 0 ? String(lo) : "";
    state.thickness_max = hi < THICK_TOP ? String(hi) : "";
    renderThicknessLabel();
    later();
  });
}
function renderAgeLabel() {
  const lo = Number($("#age-min").value), hi = Number($("#age-max").value);
  $("#age-label").textContent = lo <= 0 && hi >= AGE_TOP ? t("any_age") : `${lo}–${hi >= AGE_TOP ? "100+" : hi}`;
}
let debounce = null;
function later() { clearTimeout(debounce); debounce = setTimeout(searchFromStart, 300); }
$("#q").addEventListener("input", (ev) => { state.q = ev.target.value; later(); });
$("#q").addEventListener("keydown", (ev) => { if (ev.key === "Enter") { clearTimeout(debounce); state.q = ev.target.value; searchFromStart(); } });
for (const id of ["#age-min", "#age-max"]) {
  $(id).addEventListener("input", () => {
    let lo = Number($("#age-min").value), hi = Number($("#age-max").value);
    if (lo > hi) { if (id === "#age-min") $("#age-max").value = hi = lo; else $("#age-min").value = lo = hi; }
    state.age_min = lo > 0 ? String(lo) : "";
    state.age_max = hi < AGE_TOP ? String(hi) : "";
    renderAgeLabel();
    later();
  });
}
$("#date-from").addEventListener("change", (ev) => { state.date_from = ev.target.value; searchFromStart(); });
$("#date-to").addEventListener("change", (ev) => { state.date_to = ev.target.value; searchFromStart(); });
$("#f-manufacturer").addEventListener("change", (ev) => { state.manufacturer = ev.target.value; searchFromStart(); });
$("#sort").addEventListener("change", (ev) => { state.sort = ev.target.value; searchFromStart(); });
$("#clear").addEventListener("click", () => { Object.assign(state, structuredClone(EMPTY)); syncInputs(); search(); });
$("#lang").addEventListener("change", (ev) => {
  lang = ev.target.value;
  localStorage.setItem(LANG_STORE, lang);
  applyI18n();
  if (me) { $("#account").textContent = t("account_line", { customer: me.customer, plan: me.plan, regions: me.regions.join(", ") || t("none") }); }
  renderSelection();
  if (lastResponse) { renderCount(lastResponse); renderResults(lastResponse.results, $("#results")); renderFacets(lastResponse.facets); renderPager(lastResponse); renderActive(); }
});
window.addEventListener("popstate", () => { readAddress(); search(); });

// ---------- the export email's link: /descarga?pedido=…&token=… ----------
const pending = (() => {
  const p = new URLSearchParams(location.search);
  return location.pathname === "/descarga" && p.get("pedido") && p.get("token") ? { id: p.get("pedido"), token: p.get("token") } : null;
})();
async function downloadFromEmail() {
  if (!pending) return;
  history.replaceState(null, "", "/");
  showTab("exports");
  try {
    const res = await api(`/api/exports/${encodeURIComponent(pending.id)}/download?token=${encodeURIComponent(pending.token)}`);
    const blob = await res.blob();
    const a = el("a", { href: URL.createObjectURL(blob), download: `sta-export-${pending.id}.zip` });
    document.body.append(a); a.click(); a.remove();
  } catch (e) {
    if (e.message !== "401") { showTab("studies"); $("#error").textContent = e.message; }
  }
}

// ---------- start ----------
applyI18n();
if (!pending) readAddress();
renderSelection();
if (!apiKey()) showLogin();
else checkKey().then(() => (pending ? downloadFromEmail() : search())).catch(() => {});
