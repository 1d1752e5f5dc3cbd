// medai web UI: sign-in, model cards, one prediction page per input kind, audit log and users for admins.
// Every value from the server is inserted as text nodes (never parsed as HTML); the token lives in sessionStorage
// and goes in the Authorization header, so there are no cookies to forge.
"use strict";

const state = { token: sessionStorage.getItem("medai.token"), user: null };
const main = () => document.getElementById("main");

// -- helpers ------------------------------------------------------------------------------------------------------

function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "className") node.className = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function show(...nodes) {
  main().replaceChildren(...nodes);
}

function percent(p) {
  return p === null || p === undefined ? "–" : `${(100 * p).toFixed(1)}%`;
}

function number(value, digits = 3) {
  return typeof value === "number" ? Number(value.toPrecision(digits)).toString() : String(value ?? "–");
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, { method = "GET", json, form, raw } = {}) {
  const headers = {};
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  let body;
  if (json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(json); }
  else if (form !== undefined) body = form;
  const response = await fetch(path, { method, headers, body });
  if (response.status === 401 && path !== "/api/auth/token") {
    signOut("Your session has ended; please sign in again.");
    throw new ApiError(401, "Not signed in.");
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).detail || message; } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, message);
  }
  return raw ? response : response.json();
}

// A form's request: its submit button off and "Working…" shown meanwhile, then the rendered result or the error.
async function submitForm(event, form, output, work) {
  event.preventDefault();
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  output.replaceChildren(h("p", { className: "muted" }, "Working…"));
  try { output.replaceChildren(await work()); }
  catch (error) { output.replaceChildren(errorBox(error)); }
  finally { button.disabled = false; }
}

function errorBox(error) {
  return h("p", { className: "error", role: "alert" }, error.message || String(error));
}

// -- sign-in ------------------------------------------------------------------------------------------------------

function signOut(message) {
  state.token = null; state.user = null;
  sessionStorage.removeItem("medai.token");
  document.getElementById("nav").hidden = true;
  location.hash = "#/login";
  renderLogin(message);
}

function renderLogin(message) {
  const status = h("div");
  if (message) status.append(h("p", { className: "notice" }, message));
  const form = h("form", { className: "stack", onsubmit: async (event) => {
    event.preventDefault();
    const data = new URLSearchParams(new FormData(form));
    form.querySelector("button").disabled = true;
    try {
      const result = await fetch("/api/auth/token", { method: "POST", body: data });
      const body = await result.json();
      if (!result.ok) throw new ApiError(result.status, body.detail);
      state.token = body.access_token;
      sessionStorage.setItem("medai.token", state.token);
      await loadUser();
      location.hash = state.user.role === "admin" ? "#/audit" : "#/models";
      route();
    } catch (error) {
      status.replaceChildren(errorBox(error));
      form.querySelector("button").disabled = false;
    }
  } },
    h("label", {}, "User name", h("input", { name: "username", autocomplete: "username", required: true, autofocus: true })),
    h("label", {}, "Password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
    h("button", { className: "primary", type: "submit" }, "Sign in"));
  show(h("section", { className: "panel" }, h("h1", {}, "Sign in"), status, form));
}

async function loadUser() {
  state.user = await api("/api/users/me");
  document.getElementById("whoami").textContent = `${state.user.full_name || state.user.username} · ${state.user.role}`;
  for (const link of document.querySelectorAll("#nav a[data-role]")) {
    link.hidden = !link.dataset.role.split(" ").includes(state.user.role);
  }
  document.getElementById("nav").hidden = false;
}

// -- models -------------------------------------------------------------------------------------------------------

async function renderModels() {
  const models = await api("/api/models");
  const cards = models.map((model) => {
    const live = model.versions.filter((v) => !v.retired);
    const shown = live.find((v) => v.version === model.production_version) || live[live.length - 1];
    return h("article", { className: "card" },
      h("h2", {}, model.name),
      model.description ? h("p", {}, model.description) : null,
      shown ? h("p", {}, h("span", { className: "tag" }, shown.task),
        h("span", { className: `tag ${shown.stage}` }, `v${shown.version} ${shown.stage}`)) : h("p", { className: "muted" }, "All versions retired."),
      shown ? h("p", { className: "muted" }, `Classes: ${shown.label_names.join(", ") || "–"}`) : null,
      shown ? h("a", { href: `#/model/${encodeURIComponent(model.name)}/${shown.version}` }, "Open") : null);
  });
  show(h("h1", {}, "Models"), models.length ? h("div", { className: "cards" }, cards)
    : h("p", { className: "panel muted" }, "No model is registered yet. Researchers register bundles through the API."));
}

async function renderModel(name, versionNumber) {
  const model = await api(`/api/models/${encodeURIComponent(name)}`);
  const live = model.versions.filter((v) => !v.retired);
  const chosen = Number(versionNumber) || model.production_version || (live.length ? live[live.length - 1].version : null);
  if (!chosen) { show(h("h1", {}, name), h("p", { className: "panel" }, "Every version of this model is retired.")); return; }
  const detail = await api(`/api/models/${encodeURIComponent(name)}/versions/${chosen}`);
  const chooser = h("select", { onchange: (e) => { location.hash = `#/model/${encodeURIComponent(name)}/${e.target.value}`; } },
    live.map((v) => h("option", { value: v.version, selected: v.version === chosen }, `v${v.version} (${v.stage})`)));
  const metrics = Object.entries(detail.metrics).filter(([key]) => key !== "split" && key !== "n_samples");
  const header = h("section", { className: "panel" },
    h("div", { className: "row" }, h("h1", {}, name), h("label", {}, "Version", chooser)),
    h("p", {}, h("span", { className: "tag" }, detail.task), h("span", { className: `tag ${detail.stage}` }, detail.stage),
      detail.retired ? h("span", { className: "tag retired" }, "retired") : null),
    model.description ? h("p", {}, model.description) : null,
    metrics.length ? h("p", { className: "muted" }, `${detail.metrics.split} metrics: `,
      metrics.map(([k, v]) => `${k} ${number(v)}`).join(" · ")) : null,
    h("p", { className: "mono muted" }, `weights sha256 ${detail.checksum}`),
    h("details", { className: "modelcard" }, h("summary", {}, "Model card"),
      renderMarkdown(detail.card_markdown, `/api/models/${encodeURIComponent(name)}/versions/${chosen}/files/`)));
  const canPredict = ["clinician", "researcher"].includes(state.user.role);
  show(header, canPredict ? predictionPanel(name, detail) : h("p", { className: "panel muted" }, "Your role does not run predictions."));
}

// -- prediction pages ---------------------------------------------------------------------------------------------

function predictionPanel(name, detail) {
  if (detail.inputs.kind === "history") return historyPanel(name, detail);
  if (detail.inputs.kind === "record" && detail.inputs.fields.some((f) => f.type === "smiles")) return moleculePanel(name, detail);
  const output = h("div");
  const base = `/api/models/${encodeURIComponent(name)}`;
  const query = `?version=${detail.version}`;
  const inputs = detail.inputs;
  let form;
  const submit = (event, request) => submitForm(event, form, output, async () => renderResult(await request()));
  if (inputs.kind === "image") {
    const file = h("input", { type: "file", name: "file", required: true, accept: inputs.suffixes.join(",") });
    form = h("form", { className: "stack", onsubmit: (e) => submit(e, () => {
      const data = new FormData(); data.append("file", file.files[0]);
      return api(`${base}/explain/file${query}`, { method: "POST", form: data });
    }) },
    h("label", {}, "Image", h("small", {}, `PNG, JPEG or DICOM (identifying DICOM tags are never stored)`), file),
    h("button", { className: "primary", type: "submit" }, "Predict and explain"));
  } else if (inputs.kind === "record") {
    const fields = inputs.fields.map(fieldInput);
    form = h("form", { onsubmit: (e) => submit(e, () => {
      const record = {};
      for (const { field, input } of fields) {
        const text = input.value.trim();
        if (text === "") continue;
        record[field.name] = field.type === "number" ? Number(text) : text;
      }
      return api(`${base}/explain/records${query}`, { method: "POST", json: { records: [record] } });
    }) },
    h("div", { className: "fields" }, fields.map((f) => f.label)),
    h("p", { className: "muted" }, "Leave a value empty when it was not measured; the model imputes it."),
    h("button", { className: "primary", type: "submit" }, "Predict and explain"));
  } else {
    const file = h("input", { type: "file", name: "file", accept: inputs.suffixes.join(",") });
    const text = h("textarea", { placeholder: '{"records": [{"field": "value"}]}' });
    form = h("form", { className: "stack", onsubmit: (e) => submit(e, () => {
      if (file.files.length) {
        const data = new FormData(); data.append("file", file.files[0]);
        return api(`${base}/explain/file${query}`, { method: "POST", form: data });
      }
      let body;
      try { body = JSON.parse(text.value); } catch (_) { throw new Error("The JSON is not valid."); }
      return api(`${base}/explain/records${query}`, { method: "POST", json: body });
    }) },
    h("label", {}, "Record file", h("small", {}, inputs.suffixes.join(" ")), file),
    h("label", {}, "…or JSON records", text),
    h("button", { className: "primary", type: "submit" }, "Predict and explain"));
  }
  return h("section", { className: "panel" }, h("h2", {}, "New prediction"), form, output);
}

// -- patient history page (drug recommendation) -------------------------------------------------------------------

// Codes as the server reads them: separated by commas, semicolons or spaces; upper case; dots dropped (250.00 = 25000).
function parseCodes(text) {
  return [...new Set(String(text || "").split(/[\s,;]+/).map((c) => c.replace(/\./g, "").toUpperCase()).filter(Boolean))];
}

function historyPanel(name, detail) {
  const base = `/api/models/${encodeURIComponent(name)}`;
  const query = `?version=${detail.version}`;
  const fields = detail.inputs.fields.filter((f) => f.type === "codes");
  const output = h("div");
  const visitsBox = h("div", { className: "visits" });
  const datalists = fields.filter((f) => f.codes).map((f) => h("datalist", { id: `codes-${f.name}` },
    f.codes.map((c) => h("option", { value: c }, f.descriptions && f.descriptions[c] ? `${c} – ${f.descriptions[c]}` : c))));
  const rows = [];  // one {node, inputs: {field: input}} per visit, earliest first; the last is the current visit

  function fieldLabel(field) {
    return `${field.label || field.name}${field.system ? ` (${field.system})` : ""}`;
  }
  function codeHints(field, input, hints) {  // what each typed code means, or that the model does not know it
    const known = field.codes ? new Set(field.codes) : null;
    hints.replaceChildren(...parseCodes(input.value).map((code) => {
      const unknown = known && !known.has(code);
      const text = unknown ? `${code}: not known to this model` : `${code}${field.descriptions && field.descriptions[code] ? `: ${field.descriptions[code]}` : ""}`;
      return h("span", { className: `code${unknown ? " unknown" : ""}` }, text);
    }));
    input.setCustomValidity("");
  }
  function visitRow() {
    const inputs = {};
    const node = h("fieldset", { className: "visit" }, h("legend", {}), h("div", { className: "fields" }, fields.map((field) => {
      const hints = h("span", { className: "codes" });
      const input = h("input", { name: field.name, type: "text", autocomplete: "off", spellcheck: "false",
        list: field.codes ? `codes-${field.name}` : null, placeholder: field.required ? "e.g. 4019, 25000" : "none",
        oninput: () => codeHints(field, input, hints) });
      inputs[field.name] = input;
      return h("label", { className: field.earlier_visits_only ? "earlier-only" : null }, fieldLabel(field),
        h("small", {}, field.required ? "required; separate codes with commas" : "optional; separate codes with commas"), input, hints);
    })));
    const remove = h("button", { type: "button", className: "link-button", onclick: () => {
      rows.splice(rows.indexOf(row), 1); node.remove(); relabel();
    } }, "Remove this visit");
    node.append(remove);
    const row = { node, inputs, remove };
    return row;
  }
  function relabel() {
    rows.forEach((row, i) => {
      const current = i === rows.length - 1;
      row.node.classList.toggle("current", current);
      row.node.querySelector("legend").textContent = current ? "Current visit (the medications to recommend)"
        : `Earlier visit ${i + 1} of ${rows.length - 1}${i === 0 ? " (oldest)" : ""}`;
      for (const field of fields) {
        if (!field.earlier_visits_only) continue;
        const input = row.inputs[field.name];
        input.disabled = current;
        input.closest("label").hidden = current;
      }
      row.remove.hidden = current;  // the current visit stays; earlier ones can go
    });
  }
  function addEarlier() {
    const row = visitRow();
    rows.splice(rows.length - 1, 0, row);
    visitsBox.insertBefore(row.node, rows[rows.length - 1].node);
    relabel();
    row.inputs[fields[0].name].focus();
  }
  const first = visitRow();
  rows.push(first); visitsBox.append(first.node); relabel();

  function records() {
    return rows.map((row, i) => {
      const record = {};
      for (const field of fields) {
        if (field.earlier_visits_only && i === rows.length - 1) continue;
        const codes = parseCodes(row.inputs[field.name].value);
        if (codes.length) record[field.name] = codes.join(", ");
      }
      return record;
    });
  }
  function checkKnown() {  // flag unknown codes before sending (the server refuses them too)
    for (const row of rows) {
      for (const field of fields) {
        const input = row.inputs[field.name];
        if (input.disabled || !field.codes) continue;
        const known = new Set(field.codes);
        const unknown = parseCodes(input.value).filter((c) => !known.has(c));
        if (unknown.length) {
          input.setCustomValidity(`Not known to this model: ${unknown.join(", ")}`);
          input.reportValidity();
          throw new Error(`${fieldLabel(field)}: ${unknown.join(", ")} ${unknown.length > 1 ? "are" : "is"} not known to this model. Check the code or leave it out.`);
        }
      }
    }
  }
  let lastRecords = null;
  const form = h("form", { className: "history", onsubmit: (event) => submitForm(event, form, output, async () => {
    checkKnown();
    lastRecords = records();
    const result = await api(`${base}/predict/records${query}`, { method: "POST", json: { records: lastRecords } });
    return renderRecommendation(result, explainClass);
  }) },
  h("p", { className: "muted" }, "Enter the patient's hospital visits in time order. The model recommends drug classes for the current visit from its diagnoses and procedures and from the earlier visits (including the medications given then)."),
  datalists, visitsBox,
  h("div", { className: "row" }, h("button", { type: "button", onclick: addEarlier }, "Add an earlier visit"),
    h("button", { className: "primary", type: "submit" }, "Recommend")));

  async function explainClass(code, box) {  // which codes drove one recommended class
    box.replaceChildren(h("p", { className: "muted" }, "Working…"));
    try {
      const result = await api(`${base}/explain/records${query}&target=${encodeURIComponent(code)}`, { method: "POST", json: { records: lastRecords } });
      box.replaceChildren(renderEvidence(result, code));
    } catch (error) { box.replaceChildren(errorBox(error)); }
  }
  return h("section", { className: "panel" }, h("h2", {}, "Patient history"), form, output);
}

function className(item) {
  return item.name ? `${item.class} – ${sentenceCase(item.name)}` : item.class;
}

function sentenceCase(text) {  // WHO names are in capitals
  return text === text.toUpperCase() ? text.charAt(0) + text.slice(1).toLowerCase() : text;
}

function visitName(offset) {
  return offset === 0 ? "current visit" : offset === -1 ? "previous visit" : `${-offset} visits before`;
}

function renderRecommendation(result, explainClass) {
  const r = result.predictions[0];
  const chosen = new Set(r.recommended.map((c) => c.class));
  const left = h("div"), right = h("div");
  for (const pair of r.interactions) {
    left.append(h("p", { className: "warning", role: "alert" }, "Drug interaction warning: ",
      `${className({ class: pair.classes[0], name: pair.names[0] })} and ${className({ class: pair.classes[1], name: pair.names[1] })} are a known interacting pair. Review before prescribing both.`));
  }
  const unknown = Object.values(r.unknown_codes || {}).reduce((a, b) => a + b, 0);
  if (r.warnings) r.warnings.forEach((text) => left.append(h("p", { className: "warning" }, text)));
  else if (unknown) left.append(h("p", { className: "warning" }, `${unknown} code(s) were not known to the model and were ignored.`));
  left.append(h("h2", {}, `Recommended drug classes (${r.recommended.length})`));
  if (!r.recommended.length) left.append(h("p", {}, `No drug class reaches the decision threshold of ${percent(r.threshold)}.`));
  const list = h("ul", { className: "recommended" });
  for (const item of r.recommended) {
    const box = h("div", { className: "why" });
    list.append(h("li", {}, h("span", { className: "drug" }, className(item)), h("strong", {}, percent(item.probability)),
      h("button", { type: "button", className: "link-button", onclick: () => explainClass(item.class, box) }, "Why?"), box));
  }
  left.append(list);
  if (!r.interactions.length && r.recommended.length > 1) left.append(h("p", { className: "notice" }, "No known interaction between the recommended classes."));
  left.append(h("p", { className: "muted" }, `A class is recommended when its probability is at least ${percent(r.threshold)} (the threshold chosen on validation patients). Classes are ATC level 3.`));
  right.append(h("h2", {}, "All drug classes, most likely first"));
  for (const item of r.ranked) {
    const bar = h("span", { "data-width": item.probability });
    right.append(h("div", { className: `prob ranked${chosen.has(item.class) ? " best" : ""}` },
      h("span", { className: "name", title: item.name || item.class }, className(item)), h("span", { className: "bar" }, bar),
      h("span", {}, percent(item.probability))));
  }
  right.querySelectorAll(".bar span").forEach((bar) => { bar.style.width = `${100 * Number(bar.dataset.width)}%`; });
  right.append(h("p", { className: "muted" }, "Bold: recommended (above the threshold)."));
  return h("div", {}, h("div", { className: "result" }, left, right), provenance(result));
}

function renderEvidence(result, code) {
  const item = (result.explanation.recommended || []).find((c) => c.class === code);
  const evidence = item ? item.evidence : [];
  const box = h("div", {});
  if (!evidence.length) box.append(h("p", { className: "muted" }, "No single code of the history changes this probability noticeably."));
  else {
    box.append(h("p", {}, "Codes that raised this recommendation most (the probability drops by this much without the code):"));
    box.append(h("ul", {}, evidence.map((e) => h("li", {}, `${e.kind} ${e.code}${e.description ? ` (${e.description})` : ""}, ${visitName(e.visit)}: `,
      h("strong", {}, `−${(100 * e.contribution).toFixed(1)} percentage points`)))));
  }
  if (result.image_png_base64) {
    box.append(h("img", { className: "explanation small", alt: `Chart of the codes behind ${code}`, src: `data:image/png;base64,${result.image_png_base64}` }));
  }
  return box;
}

function provenance(result) {
  return h("p", { className: "provenance" }, `Model ${result.model.name} v${result.model.version} (${result.model.stage}), weights sha256 `,
    h("span", { className: "mono" }, result.model.checksum.slice(0, 16)), `…; input sha256 `,
    h("span", { className: "mono" }, result.input_sha256.slice(0, 16)), "… (recorded in the audit log).");
}

// -- SMILES page (molecular properties) -----------------------------------------------------------------------------

function moleculePanel(name, detail) {
  const base = `/api/models/${encodeURIComponent(name)}`;
  const field = detail.inputs.fields.find((f) => f.type === "smiles");
  const outputs = detail.inputs.outputs || [];
  const output = h("div");
  const smiles = h("input", { name: field.name, type: "text", required: true, autocomplete: "off", spellcheck: "false",
    maxlength: 2000, placeholder: "e.g. CC(=O)Oc1ccccc1C(=O)O" });
  const target = h("select", { name: "target" }, outputs.map((o) => h("option", { value: o.name }, o.name)));
  const form = h("form", { className: "stack wide", onsubmit: (event) => submitForm(event, form, output, async () => {
    const params = new URLSearchParams({ version: detail.version });
    if (target.value) params.set("target", target.value);
    const result = await api(`${base}/explain/records?${params}`, { method: "POST", json: { records: [{ [field.name]: smiles.value.trim() }] } });
    return renderMolecule(result, outputs);
  }) },
  h("label", {}, "Molecule (SMILES)", h("small", {}, "Salts are stripped and charges neutralised as in training."), smiles),
  outputs.length > 1 ? h("label", {}, "Property to highlight on the atoms", target) : null,
  h("button", { className: "primary", type: "submit" }, "Predict properties"));
  return h("section", { className: "panel" }, h("h2", {}, "Molecule"), form, output);
}

function renderMolecule(result, outputs) {
  const p = result.prediction || {};
  const e = result.explanation || {};
  const left = h("div"), right = h("div");
  if (p.error) left.append(h("p", { className: "error", role: "alert" }, `This molecule cannot be predicted: ${p.reason || p.error}.`));
  const domain = p.domain;
  if (domain && !domain.in_domain) {
    left.append(h("p", { className: "warning", role: "alert" }, "Outside the applicability domain: this molecule is unlike the molecules the model was trained on ",
      `(similarity ${number(domain.score, 2)}, threshold ${number(domain.threshold, 2)}). Treat the predictions with caution.`));
  } else if (domain) {
    left.append(h("p", { className: "notice" }, `Within the applicability domain (similarity to the training molecules ${number(domain.score, 2)}, threshold ${number(domain.threshold, 2)}).`));
  }
  if (p.smiles) left.append(h("p", {}, "Standardised SMILES: ", h("span", { className: "mono" }, p.smiles)));
  if (p.standardised && p.standardised.length) left.append(h("p", { className: "muted" }, `Standardisation: ${p.standardised.map((c) => c.replace(/_/g, " ")).join(", ")}.`));
  if (p.tasks) {
    const types = Object.fromEntries(outputs.map((o) => [o.name, o.type]));
    const rows = Object.entries(p.tasks).map(([name, t]) => {
      const classification = t.probability !== undefined || types[name] === "classification";
      return h("tr", {}, h("td", {}, name),
        h("td", {}, classification ? `${percent(t.probability)} probability` : number(t.value, 4)),
        h("td", {}, classification ? `± ${(100 * t.uncertainty).toFixed(1)} percentage points` : `± ${number(t.uncertainty, 3)}`));
    });
    left.append(h("h2", {}, "Predicted properties"), h("table", { className: "properties" },
      h("tr", {}, h("th", {}, "Property"), h("th", {}, "Prediction"), h("th", {}, "Uncertainty")), rows),
    h("p", { className: "muted" }, "Uncertainty is the spread between the ensemble's models: a large spread means they disagree."));
  }
  if (p.alerts) {
    left.append(h("h2", {}, "Structural alerts"));
    if (!p.alerts.length) left.append(h("p", { className: "muted" }, "No structural alert (PAINS, Brenk)."));
    else {
      left.append(h("p", { className: "warning" }, `${p.alerts.length} structural alert(s): substructures often behind assay interference or toxicity.`),
        h("ul", { className: "alerts" }, p.alerts.map((a) => h("li", { title: `atoms ${a.atoms.join(", ")}` },
          `${a.name} (${a.catalog.replace("_", " ")}), a group of ${a.atoms.length} atom${a.atoms.length === 1 ? "" : "s"}`))));
    }
  }
  if (result.image_png_base64) {
    right.append(h("h2", {}, `Atoms behind ${e.explained_class || "the prediction"}`),
      h("img", { className: "explanation molecule", alt: `Atom contributions to ${e.explained_class || "the prediction"}`,
        src: `data:image/png;base64,${result.image_png_base64}` }),
      h("p", { className: "muted" }, "Green atoms raise the prediction, pink atoms lower it."));
  }
  return h("div", {}, h("div", { className: "result" }, left, right), provenance(result));
}

function fieldInput(field) {
  let input, hint = "";
  if (field.type === "category") {
    input = h("select", { name: field.name }, h("option", { value: "" }, "(not recorded)"),
      field.categories.map((c) => h("option", { value: c }, c)));
  } else {
    input = h("input", { name: field.name, type: field.type === "number" ? "number" : "text", step: "any",
      inputmode: field.type === "number" ? "decimal" : null });
    const p = field.percentiles;
    if (p) hint = `typical ${number(p["50"])} (5–95%: ${number(p["5"])}–${number(p["95"])})`;
  }
  return { field, input, label: h("label", {}, field.name, hint ? h("small", {}, hint) : null, input) };
}

function renderResult(result) {
  const prediction = result.prediction || (result.predictions && result.predictions[0]) || {};
  const explanation = result.explanation || {};
  const left = h("div");
  const ood = prediction.ood;
  if (ood && ood.out_of_distribution) {
    left.append(h("p", { className: "warning", role: "alert" },
      "Out-of-distribution warning: this input is unlike the data the model was trained on. Treat the result with caution.",
      ...(ood.reasons || []).map((reason) => h("small", { className: "reason" }, reason))));
  }
  if (prediction.label !== undefined) left.append(h("h2", {}, `Prediction: ${prediction.label}`));
  const probabilities = prediction.probabilities || explanation.probabilities;
  if (probabilities) {
    const best = Object.entries(probabilities).sort((a, b) => b[1] - a[1])[0][0];
    for (const [name, p] of Object.entries(probabilities)) {
      left.append(h("div", { className: `prob${name === best ? " best" : ""}` }, h("span", { className: "name" }, name),
        h("span", { className: "bar" }, h("span", { style: null, "data-width": p })), h("span", {}, percent(p))));
    }
    left.querySelectorAll(".bar span").forEach((bar) => { bar.style.width = `${100 * Number(bar.dataset.width)}%`; });
    left.append(h("p", { className: "muted" }, "Calibrated probabilities."));
  }
  if (ood) left.append(h("p", { className: "muted" }, `Novelty score ${number(ood.score)} (threshold ${number(ood.threshold)}).`));
  const right = h("div");
  if (explanation.features) right.append(h("h2", {}, `What drove P(${explanation.explained_class})`), contributionChart(explanation));
  if (result.image_png_base64 && !explanation.features) {  // contributions are drawn above; other pictures here
    right.append(h("h2", {}, explanation.method === "grad-cam" ? "Grad-CAM heat map" : "Explanation"),
      h("img", { className: "explanation", alt: `Explanation of ${explanation.explained_class || "the prediction"}`,
        src: `data:image/png;base64,${result.image_png_base64}` }));
  }
  if (!result.explanation && result.predictions && result.predictions.length > 1) right.append(resultsTable(result.predictions));
  return h("div", {}, h("div", { className: "result" }, left, right),
    h("p", { className: "provenance" }, `Model ${result.model.name} v${result.model.version} (${result.model.stage}), weights sha256 `,
      h("span", { className: "mono" }, result.model.checksum.slice(0, 16)), `…; input sha256 `,
      h("span", { className: "mono" }, result.input_sha256.slice(0, 16)), "… (recorded in the audit log)."));
}

function contributionChart(explanation) {
  const features = explanation.features.slice(0, 12);
  const largest = Math.max(...features.map((f) => Math.abs(f.contribution)), 1e-12);
  const chart = h("div", {}, h("p", { className: "muted" },
    `Red raises, blue lowers the probability, compared with a typical patient (${percent(explanation.reference_probability)}).`));
  for (const f of features) {
    const width = `${(50 * Math.abs(f.contribution)) / largest}%`;
    const bar = h("span", { className: f.contribution > 0 ? "raises" : "lowers" });
    bar.style.width = width;
    chart.append(h("div", { className: "contrib" }, h("span", {}, `${f.feature} = ${f.value === null ? "missing" : number(f.value, 4)}`),
      h("span", { className: "axis", title: `${f.contribution > 0 ? "+" : ""}${number(f.contribution)}` }, bar)));
  }
  return chart;
}

function resultsTable(rows) {
  const keys = Object.keys(rows[0]).filter((k) => typeof rows[0][k] !== "object");
  return h("table", {}, h("tr", {}, keys.map((k) => h("th", {}, k))),
    rows.map((r) => h("tr", {}, keys.map((k) => h("td", {}, number(r[k]))))));
}

// -- model cards (a small, safe Markdown subset) ------------------------------------------------------------------

function renderMarkdown(text, filesBase) {
  const root = h("div", { className: "markdown" });
  let list = null, table = null;
  for (const line of text.split("\n")) {
    if (!line.startsWith("|")) table = null;
    if (!line.startsWith("- ")) list = null;
    const heading = line.match(/^(#{1,4}) (.*)$/);
    if (heading) root.append(h(`h${Math.min(heading[1].length + 1, 5)}`, {}, inline(heading[2], filesBase)));
    else if (line.startsWith("- ")) { if (!list) root.append(list = h("ul")); list.append(h("li", {}, inline(line.slice(2), filesBase))); }
    else if (line.startsWith("|")) {
      const cells = line.split("|").slice(1, -1).map((c) => c.trim());
      if (cells.every((c) => /^:?-+:?$/.test(c))) continue;
      if (!table) { root.append(table = h("table")); table.append(h("tr", {}, cells.map((c) => h("th", {}, inline(c, filesBase))))); }
      else table.append(h("tr", {}, cells.map((c) => h("td", {}, inline(c, filesBase)))));
    } else if (line.trim()) root.append(h("p", {}, inline(line, filesBase)));
  }
  return root;
}

function inline(text, filesBase) {
  const parts = [];
  const pattern = /!\[([^\]]*)\]\(([^)\s]+)\)|`([^`]+)`|\*\*([^*]+)\*\*/g;
  let last = 0, match;
  while ((match = pattern.exec(text))) {
    parts.push(text.slice(last, match.index));
    if (match[1] !== undefined) parts.push(bundleImage(match[1], match[2], filesBase));
    else if (match[3] !== undefined) parts.push(h("code", {}, match[3]));
    else parts.push(h("strong", {}, match[4]));
    last = pattern.lastIndex;
  }
  parts.push(text.slice(last));
  return parts;
}

function bundleImage(alt, path, filesBase) {
  const image = h("img", { alt });
  if (/^plots\/[A-Za-z0-9_.-]+\.png$/.test(path)) {
    api(filesBase + path, { raw: true }).then((r) => r.blob()).then((blob) => { image.src = URL.createObjectURL(blob); })
      .catch(() => image.replaceWith(h("span", { className: "muted" }, `[${alt}]`)));
  }
  return image;
}

// -- audit log and users (admins) ---------------------------------------------------------------------------------

async function renderAudit() {
  const filters = h("form", { className: "row", onsubmit: (e) => { e.preventDefault(); load(); } },
    h("label", {}, "Action", h("input", { name: "action", list: "audit-actions" })),
    h("label", {}, "User", h("input", { name: "actor" })),
    h("label", {}, "Model", h("input", { name: "model_name" })),
    h("datalist", { id: "audit-actions" }, ["predict", "explain", "auth.login", "model.register", "model.stage",
      "model.retire", "user.create", "user.update", "access.denied", "audit.read", "audit.export"].map((a) => h("option", { value: a }))),
    h("button", { className: "primary", type: "submit" }, "Filter"));
  const chain = h("div");
  const listing = h("div");
  const verify = h("button", { className: "primary", type: "button", onclick: async () => {
    try {
      const report = await api("/api/audit/verify");
      chain.replaceChildren(report.valid ? h("p", { className: "notice" }, `Hash chain intact: ${report.entries} entries verified.`)
        : h("p", { className: "error" }, `Hash chain BROKEN at entry ${report.first_bad_id}: ${report.reason}.`));
    } catch (error) { chain.replaceChildren(errorBox(error)); }
  } }, "Verify chain");
  const download = (format) => h("button", { type: "button", className: "primary", onclick: async () => {
    const response = await api(`/api/audit/export?format=${format}`, { raw: true });
    const link = h("a", { href: URL.createObjectURL(await response.blob()), download: `medai-audit.${format}` });
    document.body.append(link); link.click(); link.remove();
  } }, `Export ${format.toUpperCase()}`);
  async function load() {
    const params = new URLSearchParams();
    for (const [key, value] of new FormData(filters)) if (value) params.set(key, value);
    try {
      const entries = await api(`/api/audit?${params}`);
      const columns = ["id", "at", "actor", "role", "action", "outcome", "model_name", "model_version", "input_sha256"];
      const cell = (e, c) => {
        if (c === "input_sha256" && e[c]) return `${e[c].slice(0, 16)}…`;
        if (c === "at") return `${e.at.slice(0, 10)} ${e.at.slice(11, 19)} UTC`;
        return e[c] ?? "";
      };
      const rows = entries.map((e) => h("tr", {}, columns.map((c) =>
        h("td", { className: c === "input_sha256" ? "mono" : null }, cell(e, c)))));
      const head = h("tr", {}, columns.map((c) => h("th", {}, c.replace("_", " "))));
      listing.replaceChildren(entries.length ? h("table", {}, head, rows) : h("p", { className: "muted" }, "No entries match."));
    } catch (error) { listing.replaceChildren(errorBox(error)); }
  }
  show(h("h1", {}, "Audit log"), h("section", { className: "panel" }, filters,
    h("div", { className: "row" }, verify, download("jsonl"), download("csv")), chain), h("section", { className: "panel" }, listing));
  load();
}

async function renderUsers() {
  const users = await api("/api/users");
  const status = h("div");
  const form = h("form", { className: "row", onsubmit: async (e) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    try { await api("/api/users", { method: "POST", json: data }); renderUsers(); }
    catch (error) { status.replaceChildren(errorBox(error)); }
  } },
  h("label", {}, "User name", h("input", { name: "username", required: true })),
  h("label", {}, "Full name", h("input", { name: "full_name" })),
  h("label", {}, "Role", h("select", { name: "role" }, ["clinician", "researcher", "admin"].map((r) => h("option", { value: r }, r)))),
  h("label", {}, "Initial password", h("input", { name: "password", type: "password", required: true, minlength: 10, autocomplete: "new-password" })),
  h("button", { className: "primary", type: "submit" }, "Create"));
  const toggle = (user) => h("button", { type: "button", onclick: async () => {
    try { await api(`/api/users/${user.id}`, { method: "PATCH", json: { is_active: !user.is_active } }); renderUsers(); }
    catch (error) { status.replaceChildren(errorBox(error)); }
  } }, user.is_active ? "Deactivate" : "Reactivate");
  show(h("h1", {}, "Users"), h("section", { className: "panel" }, h("h2", {}, "New account"), form, status),
    h("section", { className: "panel" }, h("table", {}, h("tr", {}, ["User", "Name", "Role", "Active", ""].map((c) => h("th", {}, c))),
      users.map((u) => h("tr", {}, h("td", {}, u.username), h("td", {}, u.full_name), h("td", {}, u.role),
        h("td", {}, u.is_active ? "yes" : "no"), h("td", {}, toggle(u)))))));
}

// -- routing ------------------------------------------------------------------------------------------------------

async function route() {
  if (!state.token) { renderLogin(); return; }
  try {
    if (!state.user) await loadUser();
    const [, page, name, version] = location.hash.split("/");
    for (const link of document.querySelectorAll("#nav a")) {
      link.toggleAttribute("aria-current", link.getAttribute("href") === `#/${page}`);
      if (link.hasAttribute("aria-current")) link.setAttribute("aria-current", "page");
    }
    if (page === "model" && name) await renderModel(decodeURIComponent(name), version);
    else if (page === "audit") await renderAudit();
    else if (page === "users") await renderUsers();
    else await renderModels();
  } catch (error) {
    if (error.status !== 401) show(errorBox(error));
  }
}

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("signout").addEventListener("click", () => signOut("Signed out."));
  route();
});
