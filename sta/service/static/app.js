// STA Standard search page: plain JS over the query service's API.
// The API key is asked once and kept in localStorage; every request sends it
// in X-API-Key (thumbnails too: they are fetched and shown as blob URLs, since
// an <img src> cannot carry a header).
"use strict";

const KEY_STORE = "sta_api_key";
const SEL_STORE = "sta_selection";
const PAGE_SIZE = 10;

const NAMES = {
  modality: { MR: "Resonancia magnética (MR)", CT: "Tomografía (CT)", US: "Ultrasonido (US)",
    MG: "Mamografía (MG)", CR: "Rayos X (CR)", DX: "Rayos X digital (DX)", PT: "PET (PT)",
    NM: "Medicina nuclear (NM)", SM: "Histopatología (SM)", XA: "Angiografía (XA)" },
  body_region: { head_neck: "Cabeza y cuello", chest: "Tórax", abdomen: "Abdomen",
    msk: "Musculoesquelético", pelvis: "Pelvis", breast: "Mama", whole_body: "Cuerpo completo",
    unknown: "Sin clasificar" },
  sex: { F: "Mujer", M: "Hombre", O: "Intersexual / otro" },
  finding: { pulmonary_nodule: "Nódulo pulmonar", tumor: "Tumor / masa", fracture: "Fractura",
    pneumonia: "Neumonía", infarct: "Infarto", arthritis: "Artritis", infection: "Infección", cyst: "Quiste" },
  country: { co: "Colombia", br: "Brasil", ar: "Argentina", ec: "Ecuador", cl: "Chile",
    mx: "México", pe: "Perú", uy: "Uruguay", us: "Estados Unidos" },
};
const FACETS = ["sex", "modality", "body_region", "label", "country", "partner"];

const state = {
  q: "", sex: [], modality: [], body_region: [], label: [], country: [], partner: [],
  manufacturer: "", age_min: "", age_max: "", sort: "date_desc", page: 1,
};
let lastResponse = null;
let searchSeq = 0;
let selection = loadSelection();

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

function labelName(facet, value) {
  if (facet === "label") {
    const [name, v] = value.split(":");
    if (name === "birads") return `BI-RADS ${v}`;
    if (name === "normal") return v === "yes" ? "Normal" : "Anormal";
    if (name === "malignancy") return v === "benign" ? "Benigno" : v === "malignant" ? "Maligno" : v;
    if (name === "finding" && v) return NAMES.finding[v] || v;
    return v ? `${name}: ${v}` : name;
  }
  if (facet === "age") return `${value} años`;
  return (NAMES[facet] && NAMES[facet][value]) || value;
}

// ---------- API ----------
function apiKey() { return localStorage.getItem(KEY_STORE); }

async function api(path) {
  const res = await fetch(path, { headers: { "X-API-Key": apiKey() || "" } });
  if (res.status === 401) { showLogin("La clave no es válida o ya no está activa."); throw new Error("401"); }
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail; } catch (e) { /* not JSON */ }
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return res;
}

function queryString() {
  const p = new URLSearchParams();
  if (state.q.trim()) p.set("q", state.q.trim());
  for (const f of FACETS) for (const v of state[f]) p.append(f, v);
  if (state.manufacturer) p.append("manufacturer", state.manufacturer);
  if (state.age_min !== "") p.set("age_min", state.age_min);
  if (state.age_max !== "") p.set("age_max", state.age_max);
  p.set("sort", state.sort);
  p.set("page", state.page);
  p.set("page_size", PAGE_SIZE);
  return p.toString();
}

// ---------- login ----------
function showLogin(message) {
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
  $("#api-key-input").focus();
}

async function checkKey() {
  const res = await api("/api/me");
  const me = await res.json();
  $("#account").textContent = `${me.customer} · plan ${me.plan} · regiones ${me.regions.join(", ") || "ninguna"}`;
  $("#logout").hidden = false;
  return me;
}

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  localStorage.setItem(KEY_STORE, $("#api-key-input").value.trim());
  try {
    await checkKey();
    $("#login").hidden = true;
    $("#api-key-input").value = "";
    search();
  } catch (e) {
    if (e.message !== "401") $("#login-error").textContent = e.message;
  }
});
$("#logout").addEventListener("click", () => { localStorage.removeItem(KEY_STORE); showLogin(); });

// ---------- search ----------
async function search() {
  const seq = ++searchSeq;
  $("#error").textContent = "";
  $("#count").textContent = "Buscando…";
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
      $("#error").textContent = "Error en la búsqueda: " + e.message;
      $("#count").textContent = "";
    }
  }
}

function renderCount(d) {
  const first = d.total ? (d.page - 1) * d.page_size + 1 : 0;
  const last = Math.min(d.total, d.page * d.page_size);
  $("#count").textContent = `Mostrando ${fmt(first)} a ${fmt(last)} de ${fmt(d.total)} resultados`;
}

function chipsFor(s) {
  const chips = [];
  for (const l of s.labels) chips.push(labelName("label", l));
  if (s.country) chips.push(NAMES.country[s.country] || s.country);
  chips.push(s.partner_id);
  if (s.manufacturer) chips.push(s.manufacturer);
  if (s.sex) chips.push(NAMES.sex[s.sex] || s.sex);
  if (s.age !== null && s.age !== undefined) chips.push(`${s.age} años`);
  if (s.modality) chips.push(s.modality);
  return el("div", { class: "chips tags" }, chips.map((c) => el("span", { class: "chip" }, c)));
}

function thumbBox(url) {
  const box = el("div", { class: "thumb" }, url ? "Cargando…" : "Sin imagen");
  if (url) {
    api(url).then((r) => r.blob()).then((b) => {
      box.textContent = "";
      box.append(el("img", { src: URL.createObjectURL(b), alt: "Miniatura del estudio" }));
    }).catch(() => { box.textContent = "Sin imagen"; });
  }
  return box;
}

function addButton(s) {
  const added = selection.some((x) => x.study_uid === s.study_uid);
  const b = el("button", { class: "add" + (added ? " added" : ""), type: "button" }, added ? "Agregado ✓" : "Agregar");
  b.addEventListener("click", () => { toggleSelection(s); const now = selection.some((x) => x.study_uid === s.study_uid); b.textContent = now ? "Agregado ✓" : "Agregar"; b.classList.toggle("added", now); });
  return b;
}

function card(s) {
  const more = el("div", { class: "more", hidden: true },
    el("h4", {}, "Informe completo"), el("pre", {}, s.report_text || "Sin informe"),
    el("h4", {}, "Etiquetas DICOM"),
    el("table", {}, Object.entries(s.tags).map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, v)))));
  const expand = el("button", { class: "link expand", type: "button" }, "Expandir");
  expand.addEventListener("click", () => { more.hidden = !more.hidden; expand.textContent = more.hidden ? "Expandir" : "Contraer"; });
  return el("article", { class: "card", "data-study": s.study_uid },
    el("div", { class: "card-head" },
      addButton(s),
      el("span", {}, "Paciente: ",
        el("a", { href: "#", class: "patient-link", "data-token": s.patient_token,
          onclick: (ev) => { ev.preventDefault(); openPatient(s.patient_token); } }, s.patient_token)),
      el("span", {}, "Estudio: ", el("code", { class: "study-id" }, s.study_uid)),
      el("span", {}, s.study_date || "")),
    el("div", { class: "card-body" },
      el("div", {},
        el("h4", {}, "Descripción del estudio"),
        el("p", { class: "desc" }, [s.study_description, labelName("body_region", s.body_region)].filter(Boolean).join(" · ")),
        el("p", { class: "excerpt" }, s.report_excerpt || "Sin informe"),
        chipsFor(s)),
      thumbBox(s.thumbnail_url)),
    expand, more);
}

function renderResults(results, into) {
  into.textContent = "";
  if (!results.length) into.append(el("p", { class: "empty" }, "No hay estudios con estos filtros."));
  for (const s of results) into.append(card(s));
}

function renderFacets(facets) {
  for (const f of FACETS) {
    const box = document.querySelector(`#f-${f} .opts`);
    if (!box) continue;
    const counts = facets[f] || {};
    const values = new Set([...Object.keys(counts), ...state[f]]);
    box.textContent = "";
    for (const v of values) {
      const id = `opt-${f}-${v}`.replace(/[^A-Za-z0-9_-]/g, "_");
      const cb = el("input", { type: "checkbox", id, value: v, checked: state[f].includes(v) });
      cb.addEventListener("change", () => {
        state[f] = cb.checked ? [...state[f], v] : state[f].filter((x) => x !== v);
        state.page = 1;
        search();
      });
      box.append(el("label", { class: "opt", for: id }, cb, labelName(f, v), el("span", { class: "n" }, fmt(counts[v] || 0))));
    }
  }
  const ages = document.querySelector(".ages");
  ages.textContent = "";
  for (const [v, n] of Object.entries(facets.age || {}).sort()) {
    ages.append(el("div", { class: "opt" }, labelName("age", v), el("span", { class: "n" }, fmt(n))));
  }
  const sel = $("#f-manufacturer");
  const keep = state.manufacturer;
  sel.textContent = "";
  sel.append(el("option", { value: "" }, "Todos"));
  const makers = new Set([...Object.keys(facets.manufacturer || {}), ...(keep ? [keep] : [])]);
  for (const m of makers) sel.append(el("option", { value: m, selected: m === keep }, `${m} (${fmt((facets.manufacturer || {})[m] || 0)})`));
}

function renderActive() {
  const box = $("#active-filters");
  box.textContent = "";
  for (const f of FACETS) for (const v of state[f]) {
    box.append(el("button", { class: "chip x", type: "button", title: "Quitar filtro",
      onclick: () => { state[f] = state[f].filter((x) => x !== v); state.page = 1; search(); } }, `X ${labelName(f, v)}`));
  }
}

function renderPager(d) {
  const nav = $("#pager");
  nav.textContent = "";
  const pages = Math.max(1, Math.ceil(d.total / d.page_size));
  const go = (p) => { state.page = p; search(); window.scrollTo(0, 0); };
  nav.append(el("button", { type: "button", disabled: d.page <= 1, onclick: () => go(d.page - 1) }, "Anterior"));
  const from = Math.max(1, d.page - 3), to = Math.min(pages, from + 6);
  for (let p = from; p <= to; p++) {
    nav.append(el("button", { type: "button", class: p === d.page ? "current" : null, onclick: () => go(p) }, p));
  }
  nav.append(el("button", { type: "button", disabled: d.page >= pages, onclick: () => go(d.page + 1) }, "Siguiente"));
}

// ---------- selection ----------
function loadSelection() {
  try { return JSON.parse(localStorage.getItem(SEL_STORE) || "[]"); } catch (e) { return []; }
}
function saveSelection() { localStorage.setItem(SEL_STORE, JSON.stringify(selection)); renderSelection(); }
function toggleSelection(s) {
  if (selection.some((x) => x.study_uid === s.study_uid)) selection = selection.filter((x) => x.study_uid !== s.study_uid);
  else selection.push({ study_uid: s.study_uid, patient_token: s.patient_token, region: s.region, modality: s.modality, study_date: s.study_date });
  saveSelection();
}
function renderSelection() {
  $("#sel-count").textContent = selection.length;
  const ul = $("#sel-list");
  ul.textContent = "";
  for (const s of selection) {
    ul.append(el("li", {}, el("span", {}, `${s.modality || ""} ${s.study_uid}`),
      el("button", { type: "button", class: "link", title: "Quitar", onclick: () => { selection = selection.filter((x) => x.study_uid !== s.study_uid); saveSelection(); if (lastResponse) renderResults(lastResponse.results, $("#results")); } }, "×")));
  }
}
$("#sel-export").addEventListener("click", () => {
  const blob = new Blob([JSON.stringify(selection, null, 2)], { type: "application/json" });
  const a = el("a", { href: URL.createObjectURL(blob), download: "sta-seleccion.json" });
  document.body.append(a); a.click(); a.remove();
});
$("#sel-clear").addEventListener("click", () => { selection = []; saveSelection(); if (lastResponse) renderResults(lastResponse.results, $("#results")); });

// ---------- patient view ----------
async function openPatient(token) {
  $("#view-results").hidden = true;
  $("#view-patient").hidden = false;
  $("#p-token").textContent = token;
  $("#p-summary").textContent = "Cargando…";
  const list = $("#timeline");
  list.textContent = "";
  try {
    const res = await api(`/api/patients/${encodeURIComponent(token)}`);
    const p = await res.json();
    const sex = p.sex ? (NAMES.sex[p.sex] || p.sex) : "sexo no registrado";
    $("#p-summary").textContent = `${p.n_studies} estudios entre ${p.first_study_date} y ${p.last_study_date} · ` +
      `${sex} · proveedores: ${p.partners.join(", ")} · regiones: ${p.regions.map((r) => NAMES.country[r] || r).join(", ")}`;
    for (const s of p.studies) {
      list.append(el("li", { class: "event", "data-study": s.study_uid },
        el("div", { class: "card-head" }, el("span", { class: "when" }, s.study_date || "¿?"),
          el("span", {}, `${s.modality || ""} · ${labelName("body_region", s.body_region)}`),
          el("span", {}, `${s.partner_id} (${NAMES.country[s.country] || s.country})`), addButton(s)),
        el("div", { class: "card-body" },
          el("div", {}, el("p", { class: "desc" }, s.study_description || ""),
            el("p", { class: "excerpt" }, s.report_excerpt || "Sin informe"), chipsFor(s)),
          thumbBox(s.thumbnail_url))));
    }
  } catch (e) {
    if (e.message !== "401") $("#p-summary").textContent = "No se encontró el paciente: " + e.message;
  }
}
$("#back").addEventListener("click", () => { $("#view-patient").hidden = true; $("#view-results").hidden = false; showTab("studies"); });
$("#patient-form").addEventListener("submit", (ev) => { ev.preventDefault(); openPatient($("#patient-token").value.trim().toLowerCase()); });

// ---------- tabs and filter inputs ----------
function showTab(which) {
  $("#tab-studies").classList.toggle("active", which === "studies");
  $("#tab-patients").classList.toggle("active", which === "patients");
  $("#filters").hidden = which !== "studies";
  $("#patient-search").hidden = which !== "patients";
  if (which === "studies") { $("#view-patient").hidden = true; $("#view-results").hidden = false; }
}
$("#tab-studies").addEventListener("click", () => showTab("studies"));
$("#tab-patients").addEventListener("click", () => showTab("patients"));

let debounce = null;
function later() { clearTimeout(debounce); debounce = setTimeout(() => { state.page = 1; search(); }, 300); }
$("#q").addEventListener("input", (ev) => { state.q = ev.target.value; later(); });
$("#q").addEventListener("keydown", (ev) => { if (ev.key === "Enter") { clearTimeout(debounce); state.q = ev.target.value; state.page = 1; search(); } });
$("#age-min").addEventListener("input", (ev) => { state.age_min = ev.target.value; later(); });
$("#age-max").addEventListener("input", (ev) => { state.age_max = ev.target.value; later(); });
$("#f-manufacturer").addEventListener("change", (ev) => { state.manufacturer = ev.target.value; state.page = 1; search(); });
$("#sort").addEventListener("change", (ev) => { state.sort = ev.target.value; state.page = 1; search(); });
$("#clear").addEventListener("click", () => {
  Object.assign(state, { q: "", sex: [], modality: [], body_region: [], label: [], country: [], partner: [], manufacturer: "", age_min: "", age_max: "", page: 1 });
  $("#q").value = ""; $("#age-min").value = ""; $("#age-max").value = "";
  search();
});

// ---------- start ----------
renderSelection();
if (!apiKey()) showLogin();
else checkKey().then(search).catch(() => {});
