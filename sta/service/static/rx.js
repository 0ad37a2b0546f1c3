// The population-trends page: the key stays in this browser; every request sends it as X-API-Key.
(function () {
  const $ = (id) => document.getElementById(id);
  const keyInput = $("rx-key");
  keyInput.value = localStorage.getItem("sta_api_key") || "";
  const fmt = (v) => (typeof v !== "number" ? (v ?? "")
    : Number.isInteger(v) ? String(v) : Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));
  function fill(id, rows, cols) {
    const body = document.querySelector(`#${id} tbody`);
    body.replaceChildren(...rows.map((r) => {
      const tr = document.createElement("tr");
      cols.forEach((c) => { const td = document.createElement("td"); td.textContent = fmt(typeof c === "function" ? c(r) : r[c]); tr.appendChild(td); });
      return tr;
    }));
  }
  async function load(ev) {
    if (ev) ev.preventDefault();
    const key = keyInput.value.trim();
    localStorage.setItem("sta_api_key", key);
    const q = new URLSearchParams();
    if ($("rx-drug").value.trim()) q.set("drug", $("rx-drug").value.trim());
    if ($("rx-dx").value.trim()) q.set("dx", $("rx-dx").value.trim().toUpperCase());
    const headers = { "X-API-Key": key };
    $("rx-error").textContent = "";
    const r = await fetch(`/api/rx/trends?${q}`, { headers });
    if (!r.ok) { $("rx-error").textContent = `error ${r.status}`; return; }
    const data = await r.json();
    fill("tbl-doses", data.doses, [(r) => r.drug_key.replace(/^x:/, ""), "dx_group", "n", "p10", "p50", "p90", "dose_unit"]);
    fill("tbl-anomalies", data.anomalies, ["month", "checked", "anomalies", "rejected", (r) => (100 * r.anomaly_rate).toFixed(1)]);
    fill("tbl-prescribers", data.prescribers, ["prescriber_id", "orders", "checked", "anomalies", "rejected"]);
    for (const name of ["doses", "anomalies", "prescribers"]) {
      const s = await fetch(`/api/rx/trends/${name}.svg?${q}`, { headers });
      const box = $(`plot-${name}`);
      if (s.ok) {
        const doc = new DOMParser().parseFromString(await s.text(), "image/svg+xml");
        box.replaceChildren(document.importNode(doc.documentElement, true));
      }
    }
    document.body.dataset.loaded = "1";
  }
  $("rx-filters").addEventListener("submit", load);
  if (keyInput.value) load();
})();
