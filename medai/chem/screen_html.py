"""The HTML page of a screening report (:mod:`medai.chem.screen`): one self-contained file, no network.

Styles, the column-sorting script and the molecule pictures (SVG drawn by RDKit, atoms shaded by their
contribution) are all inline, so the page opens anywhere and can be mailed as one file.
"""

from __future__ import annotations

import html

from medai.errors import require

IMAGE_SIZE = 180  # pixels per molecule picture
BOND_LENGTH = 22  # pixels per bond at most: small molecules are not blown up
RAISES, LOWERS = (0.18, 0.72, 0.30), (0.91, 0.30, 0.55)  # atom colours at full strength: green up, pink down

STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 8px;"
    "vertical-align:top}th{background:#f2f2f2}th.sort{cursor:pointer}th.sort:after{content:' \\2195';color:#999}"
    "td.num{text-align:right;white-space:nowrap}code{font-size:0.9em}.smiles{font-family:monospace;"
    "word-break:break-all;min-width:10em;max-width:22em}tr.pains td:first-child{border-left:6px solid #c62828}"
    "tr.brenk td:first-child{border-left:6px solid #ef6c00}.alert{display:inline-block;margin:1px;padding:1px 6px;"
    "border-radius:3px;font-size:0.85em}.alert.pains{background:#ffcdd2;color:#8e0000}.alert.brenk{background:"
    "#ffe0b2;color:#7a3b00}.out{background:#fff3cd;color:#7a5a00;font-weight:bold;padding:0 4px}"
    ".error{color:#8e0000}td.pictures{white-space:nowrap}figure{display:inline-block;margin:2px;white-space:normal}"
    "figcaption{font-size:0.8em;text-align:center}"
)

SORT_SCRIPT = """
document.querySelectorAll('th.sort').forEach(function (th) {
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0], column = th.cellIndex, up = th.dataset.up !== '1';
    var key = function (row) { var v = row.cells[column].dataset.sort; var n = parseFloat(v);
      return isNaN(n) ? (v || '') : n; };
    Array.from(body.rows).sort(function (a, b) { var x = key(a), y = key(b);
      return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1); }).forEach(function (r) { body.appendChild(r); });
    th.dataset.up = up ? '1' : '0';
  });
});
"""


def render(document: dict) -> str:
    """The page of a report document (``ScreenReport.to_dict()``)."""
    summary = document["summary"]
    title = f"medai screening report: {document['data']}"
    counts = (f"{summary['screened']} of {summary['rows']} rows screened ({summary['skipped']} skipped); "
              f"{summary['with_alerts']} with structural alerts ({summary['with_pains']} PAINS); "
              f"{summary['out_of_domain']} outside the applicability domain of at least one model.")
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>Made {html.escape(document['created'])} by medai {html.escape(str(document['medai_version']))}. "
        f"{html.escape(counts)}</p>{_bundles_table(document['bundles'])}{_legend(document)}"
        f"{_molecules_table(document)}{_skipped_table(document['skipped'])}"
        f"<script>{SORT_SCRIPT}</script></body></html>"
    )


def _bundles_table(bundles: list[dict]) -> str:
    head = ("<tr><th>model</th><th>network</th><th>properties</th><th>domain threshold</th><th>trained on</th>"
            "<th>medai</th><th>weights sha256</th><th>atom contributions</th></tr>")
    rows = "".join(_bundle_row(b) for b in bundles)
    return f"<h2>Models</h2><table>{head}{rows}</table>"


def _bundle_row(bundle: dict) -> str:
    ensemble = f" (ensemble of {bundle['ensemble']})" if bundle.get("ensemble") else ""
    tasks = "<br>".join(f"{_e(task['name'])} ({_e(task['type'])})" for task in bundle["tasks"])
    domain, checksum = bundle["domain"], str(bundle.get("weights_sha256"))
    return (f"<tr><td><b>{_e(bundle['name'])}</b><br><code>{_e(bundle['path'])}</code></td>"
            f"<td>{_e(bundle['network'])}{ensemble}</td><td>{tasks}</td>"
            f"<td class=num>{domain['threshold']:.3f}<br><small>{domain['percentile']:g}th percentile of validation"
            f"</small></td><td>{_e(bundle.get('training_data') or 'n/a')}</td>"
            f"<td>{_e(bundle.get('medai_version'))}</td>"
            f"<td><code title='{_e(checksum)}'>{_e(checksum[:16])}</code></td>"
            f"<td>{_e(bundle['attribution'])}</td></tr>")


def _legend(document: dict) -> str:
    return ("<p>Each value is the ensemble mean &plusmn; the members' spread (probability for classification, the "
            "value in the training data's units for regression). <i>Domain</i> is the largest Tanimoto similarity to "
            "the model's training molecules; <span class=out>out</span> marks a molecule below the model's threshold, "
            "where predictions are less reliable. Alerts come from RDKit's filter catalogues "
            f"({_e(', '.join(document['alert_catalogs']))}): <span class='alert pains'>PAINS</span> "
            "<span class='alert brenk'>Brenk</span>. Pictures (first "
            f"{document['images']} molecules): atoms shaded green raise the prediction, pink lower it; colours are "
            "scaled within each picture. Click a column heading to sort.</p>")


def _molecules_table(document: dict) -> str:
    columns = [(b["name"], t["name"]) for b in document["bundles"] for t in b["tasks"]]
    head = ("<tr><th class=sort>row</th><th class=sort>molecule</th>"
            + "".join(f"<th class=sort>{_e(task)}<br><small>{_e(name)}</small></th>" for name, task in columns)
            + "".join(f"<th class=sort>domain<br><small>{_e(b['name'])}</small></th>" for b in document["bundles"])
            + "<th class=sort>alerts</th><th>atom contributions</th></tr>")
    rows = "".join(_molecule_row(m, columns, document["bundles"]) for m in document["molecules"])
    return f"<h2>Molecules</h2><table><thead>{head}</thead><tbody>{rows}</tbody></table>"


def _molecule_row(molecule: dict, columns: list[tuple[str, str]], bundles: list[dict]) -> str:
    alerts = molecule["alerts"]
    kind = "pains" if any(a["catalog"].startswith("PAINS") for a in alerts) else "brenk" if alerts else ""
    cells = [f"<td class=num data-sort='{molecule['row']}'>{molecule['row']}</td>",
             f"<td class=smiles data-sort='{_e(molecule['smiles'])}'>{_e(molecule['smiles'])}"
             + (f"<br><small>input: {_e(molecule['input'])}<br>standardised: "
                f"{_e(', '.join(molecule['standardised']))}</small>" if molecule["standardised"] else "") + "</td>"]
    for name, task in columns:
        prediction = molecule["predictions"][name]
        if "tasks" not in prediction:
            cells.append(f"<td class=error data-sort=''>{_e(prediction['error'])}: {_e(prediction['reason'])}</td>")
            continue
        entry = prediction["tasks"][task]
        value = entry.get("probability", entry.get("value"))
        cells.append(f"<td class=num data-sort='{value}'>{value:.3f} &plusmn; {entry['uncertainty']:.3f}</td>")
    for bundle in bundles:
        domain = molecule["predictions"][bundle["name"]].get("domain")
        if domain is None:
            cells.append("<td data-sort=''></td>")
            continue
        flag = "" if domain["in_domain"] else " <span class=out>out</span>"
        cells.append(f"<td class=num data-sort='{domain['score']}'>{domain['score']:.2f}{flag}</td>")
    badges = " ".join(f"<span class='alert {'pains' if a['catalog'].startswith('PAINS') else 'brenk'}' "
                      f"title='{_e(a['catalog'])}'>{_e(a['name'])}</span>" for a in alerts)
    cells.append(f"<td data-sort='{len(alerts)}'>{badges}</td>")
    cells.append(f"<td class=pictures>{_pictures(molecule)}</td>")
    return f"<tr class='{kind}'>{''.join(cells)}</tr>"


def _pictures(molecule: dict) -> str:
    figures = []
    for name, tasks in molecule.get("attributions", {}).items():
        for task, weights in tasks.items():
            figures.append(f"<figure>{contribution_svg(molecule['smiles'], weights)}"
                           f"<figcaption>{_e(task)} ({_e(name)})</figcaption></figure>")
    return "".join(figures)


def contribution_svg(smiles: str, weights: list[float], size: int = IMAGE_SIZE) -> str:
    """An inline ``<svg>`` of the molecule with each atom shaded by its weight (green positive, pink negative)."""
    Chem = require("rdkit.Chem", extra="chem")
    draw = require("rdkit.Chem.Draw.rdMolDraw2D", extra="chem")
    mol = Chem.MolFromSmiles(smiles)
    top = max((abs(w) for w in weights), default=0.0) or 1.0
    colours = {i: _shade(RAISES if w > 0 else LOWERS, abs(w) / top) for i, w in enumerate(weights)}
    canvas = draw.MolDraw2DSVG(size, size)
    canvas.drawOptions().fixedBondLength = BOND_LENGTH
    draw.PrepareAndDrawMolecule(canvas, mol, highlightAtoms=list(colours), highlightAtomColors=colours,
                                highlightAtomRadii={i: 0.45 for i in colours}, highlightBonds=[])
    canvas.FinishDrawing()
    text = canvas.GetDrawingText()
    return text[text.index("<svg"):].strip()  # drop the XML declaration: the page declares utf-8


def _shade(colour: tuple[float, float, float], strength: float) -> tuple[float, float, float]:
    """``colour`` mixed with white: white at strength 0, the full colour at 1."""
    return tuple(1.0 - strength * (1.0 - c) for c in colour)


def _skipped_table(skipped: list[dict]) -> str:
    if not skipped:
        return ""
    rows = "".join(f"<tr><td class=num>{s['row']}</td><td class=smiles>{_e(s['input'])}</td><td>{_e(s['error'])}</td>"
                   f"<td>{_e(s['reason'])}</td></tr>" for s in skipped)
    return (f"<h2>Skipped rows ({len(skipped)})</h2><table><tr><th>row</th><th>input</th><th>problem</th>"
            f"<th>reason</th></tr>{rows}</table>")


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)
