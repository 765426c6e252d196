"""The page at ``/`` for the people in the review tier: paste a review and see the label, the
confidence, the tier and the words that drove it; or score a CSV file and download it.

Plain HTML and a little JavaScript, served by the app itself; it calls the same endpoints as any
client (``/v1/explain``, ``/v1/predict/batch``), so it keeps their limits and errors, and it fetches
nothing from anywhere else. ``/?text=...`` fills the box and explains at once (a link from a queue).
"""

from __future__ import annotations

import html
import json

MAX_CSV_ROWS = 5000

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>medsent: __TITLE__</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:860px;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.3rem;margin:0 0 .2rem} .muted{color:#666;font-size:.9rem}
textarea{width:100%;min-height:7rem;font:inherit;padding:.5rem;box-sizing:border-box}
button{font:inherit;padding:.35rem 1rem;margin:.4rem 0} section{margin:1.5rem 0}
#answer{padding:.6rem .8rem;border:1px solid #ddd;border-radius:6px;display:none}
#words{margin-top:.5rem;white-space:pre-wrap;line-height:1.9}
#words span.w{border-radius:3px;padding:1px 0}
.tier{font-weight:600} .error{color:#a00}
</style></head><body>
<h1>medsent</h1>
<p class="muted">Run <b>__TITLE__</b>. Green words pushed toward the answer, red words against it.</p>
<section>
<form id="one"><label for="review">Review</label>
<textarea id="review" name="text" maxlength="__MAX_CHARS__" required></textarea>
<button type="submit">Explain</button></form>
<div id="answer"><div><b id="label"></b> &middot; confidence <span id="confidence"></span>
&middot; tier <span class="tier" id="tier"></span> <span class="muted" id="method"></span></div>
<div id="words"></div></div>
<p class="error" id="error" role="alert"></p>
</section>
<section><label for="file">Score a CSV file (a <code>review</code> or <code>text</code> column,
up to __MAX_ROWS__ rows)</label><br><input type="file" id="file" accept=".csv,text/csv">
<p id="csvstatus" class="muted"></p><a id="download" style="display:none">Download the scored file</a>
</section>
<script>
"use strict";
const LIMITS = __LIMITS__;
const $ = (id) => document.getElementById(id);

async function call(path, body) {
  const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                               body: JSON.stringify(body)});
  const data = await r.json().catch(() => ({error: "bad answer", detail: r.status}));
  if (!r.ok) {
    const detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
    throw new Error(`${data.error}: ${detail}`);
  }
  return data;
}

function showWords(text, tokens) {
  const box = $("words");
  box.textContent = "";
  const top = Math.max(1e-12, ...tokens.map((t) => Math.abs(t.score)));
  let at = 0;
  for (const t of tokens) {
    if (t.start > at) box.append(document.createTextNode(text.slice(at, t.start)));
    const span = document.createElement("span");
    span.className = "w";
    span.textContent = text.slice(t.start, t.end);
    const a = Math.min(1, Math.abs(t.score) / top) * 0.75;
    span.style.background = t.score >= 0 ? `rgba(46,160,67,${a})` : `rgba(215,58,73,${a})`;
    span.title = t.score.toFixed(4);
    span.dataset.score = t.score;
    box.append(span);
    at = t.end;
  }
  if (at < text.length) box.append(document.createTextNode(text.slice(at)));
}

async function explainText(text) {
  $("error").textContent = "";
  try {
    const r = await call("/v1/explain", {text});
    $("label").textContent = r.prediction;
    $("confidence").textContent = r.confidence.toFixed(3);
    $("tier").textContent = r.tier;
    $("method").textContent = `(${r.method}, toward ${r.target})`;
    showWords(text, r.tokens);
    $("answer").style.display = "block";
  } catch (e) {
    $("answer").style.display = "none";
    $("error").textContent = e.message;
  }
}

$("one").addEventListener("submit", (ev) => { ev.preventDefault(); explainText($("review").value); });

function parseCsv(text) {
  const rows = []; let row = [], field = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(field); field = ""; }
    else if (c === "\\n" || c === "\\r") {
      if (c === "\\r" && text[i + 1] === "\\n") i++;
      row.push(field); rows.push(row); row = []; field = "";
    } else field += c;
  }
  if (field !== "" || row.length) { row.push(field); rows.push(row); }
  return rows.filter((r) => r.length > 1 || r[0] !== "");
}

const cell = (v) => /[",\\n\\r]/.test(v) ? `"${String(v).replace(/"/g, '""')}"` : String(v);

async function scoreCsv(file) {
  const status = $("csvstatus"), link = $("download");
  link.style.display = "none";
  const rows = parseCsv(await file.text());
  if (rows.length < 2) { status.textContent = "error: the file has no rows"; return; }
  const head = rows[0], body = rows.slice(1);
  if (body.length > LIMITS.max_csv_rows) {
    status.textContent = `error: ${body.length} rows; the page takes up to ${LIMITS.max_csv_rows}`;
    return;
  }
  const col = ["review", "text"].map((c) => head.indexOf(c)).find((i) => i >= 0) ?? 0;
  const out = body.map(() => ["", "", "manual"]);
  const todo = [];
  body.forEach((r, i) => {
    const t = r[col] ?? "";
    if (t.length > LIMITS.max_text_chars) out[i] = ["", "", "too long"];
    else if (/[^\\s\\p{C}]/u.test(t)) todo.push(i);
  });
  try {
    for (let s = 0; s < todo.length; s += LIMITS.max_batch) {
      const part = todo.slice(s, s + LIMITS.max_batch);
      const r = await call("/v1/predict/batch",
                           {texts: part.map((i) => body[i][col]), return_probabilities: false});
      r.predictions.forEach((p, k) => { out[part[k]] = [p.prediction, p.confidence, p.tier]; });
      status.textContent = `scored ${Math.min(s + part.length, todo.length)} of ${todo.length}`;
    }
  } catch (e) { status.textContent = e.message; return; }
  const lines = [[...head, "prediction", "confidence", "tier"].map(cell).join(",")];
  body.forEach((r, i) => lines.push([...r, ...out[i]].map(cell).join(",")));
  link.href = URL.createObjectURL(new Blob([lines.join("\\n") + "\\n"], {type: "text/csv"}));
  link.download = file.name.replace(/\\.csv$/i, "") + ".scored.csv";
  link.style.display = "inline";
  status.textContent = `scored ${todo.length} reviews (${body.length - todo.length} blank or too long)`;
}

$("file").addEventListener("change", (ev) => { if (ev.target.files[0]) scoreCsv(ev.target.files[0]); });

const given = new URLSearchParams(location.search).get("text");
if (given) { $("review").value = given; explainText(given); }
</script></body></html>
"""


def page(title: str, max_text_chars: int, max_batch: int) -> str:
    """The page with this server's limits built in."""
    limits = {"max_text_chars": max_text_chars, "max_batch": max_batch, "max_csv_rows": MAX_CSV_ROWS}
    return (
        _PAGE.replace("__TITLE__", html.escape(title))
        .replace("__MAX_CHARS__", str(max_text_chars))
        .replace("__MAX_ROWS__", f"{MAX_CSV_ROWS:,}")
        .replace("__LIMITS__", json.dumps(limits))
    )
