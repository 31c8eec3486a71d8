// GET /: a page to try the model in a browser. Plain HTML and one inline script, no build step: it posts to
// /v1/completions with stream: true, reads the server-sent events as they arrive and shows the text and tokens/s.
export const PLAYGROUND_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>nanogpt-ts playground</title>
<link rel="icon" href="data:,">
<style>
  body { font: 15px/1.45 system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  textarea { width: 100%; box-sizing: border-box; font: 14px/1.4 ui-monospace, monospace; }
  fieldset { display: flex; flex-wrap: wrap; gap: .8rem 1.4rem; border: 1px solid #ccc; margin: .8rem 0; }
  label { display: flex; flex-direction: column; font-size: 13px; }
  input { width: 7rem; }
  #output { white-space: pre-wrap; font: 14px/1.45 ui-monospace, monospace; background: #f6f6f6; padding: .8rem; min-height: 6rem; }
  #output .prompt { color: #777; }
  #status { color: #555; font-size: 13px; min-height: 1.2em; }
  .error { color: #b00020; }
</style>
</head>
<body>
<h1>nanogpt-ts playground</h1>
<p id="model">model: <span id="model-id">…</span></p>
<label for="prompt">Prompt</label>
<textarea id="prompt" rows="5">Once upon a time</textarea>
<fieldset>
  <legend>Sampling</legend>
  <label>max_tokens <input id="max_tokens" type="number" min="1" value="64"></label>
  <label>temperature <input id="temperature" type="number" min="0" max="2" step="0.1" value="0.8"></label>
  <label>top_p <input id="top_p" type="number" min="0.01" max="1" step="0.05" value="1"></label>
  <label>seed (optional) <input id="seed" type="number" min="0" step="1"></label>
  <label>API key (if set) <input id="api_key" type="password" autocomplete="off"></label>
</fieldset>
<button id="generate">Generate</button> <button id="stop" disabled>Stop</button>
<p id="status"></p>
<div id="output"></div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let controller = null;

function headers() {
  const h = { "content-type": "application/json" };
  const key = $("api_key").value.trim();
  if (key) h.authorization = "Bearer " + key;
  return h;
}

async function loadModel() {
  try {
    const r = await fetch("/v1/models", { headers: headers() });
    const j = await r.json();
    $("model-id").textContent = r.ok ? j.data[0].id : (j.error ? j.error.message : "unavailable");
  } catch (e) {
    $("model-id").textContent = "unavailable";
  }
}

function showError(msg) {
  $("status").textContent = msg;
  $("status").className = "error";
}

async function generate() {
  const out = $("output");
  out.textContent = "";
  const promptSpan = document.createElement("span");
  promptSpan.className = "prompt";
  promptSpan.textContent = $("prompt").value;
  const textSpan = document.createElement("span");
  textSpan.id = "completion";
  out.append(promptSpan, textSpan);
  $("status").className = "";
  $("status").textContent = "waiting…";
  const body = {
    prompt: $("prompt").value,
    max_tokens: Number($("max_tokens").value),
    temperature: Number($("temperature").value),
    top_p: Number($("top_p").value),
    stream: true,
  };
  if ($("seed").value !== "") body.seed = Number($("seed").value);
  controller = new AbortController();
  $("generate").disabled = true;
  $("stop").disabled = false;
  const t0 = performance.now();
  let first = 0;
  let pieces = 0;
  let finish = null;
  try {
    const r = await fetch("/v1/completions", { method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal });
    if (!r.ok) {
      const j = await r.json().catch(() => ({}));
      showError((j.error && j.error.message) || ("HTTP " + r.status));
      return;
    }
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\\n\\n")) >= 0) {
        const event = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) { showError(chunk.error.message); continue; }
        for (const c of chunk.choices) {
          if (c.text) {
            if (!first) first = performance.now();
            textSpan.textContent += c.text;
            pieces++;
          }
          if (c.finish_reason) finish = c.finish_reason;
        }
        const secs = (performance.now() - (first || t0)) / 1000;
        $("status").textContent = pieces + " pieces, " + (secs > 0 ? (pieces / secs).toFixed(1) : "–") + " tokens/s";
      }
    }
    const total = (performance.now() - t0) / 1000;
    const gen = first ? (performance.now() - first) / 1000 : 0;
    $("status").textContent = "done (" + (finish || "?") + "): " + pieces + " tokens in " + total.toFixed(2) + " s, " +
      (gen > 0 ? (pieces / gen).toFixed(1) : "–") + " tokens/s, first token after " + ((first - t0) / 1000).toFixed(2) + " s";
  } catch (e) {
    if (e.name === "AbortError") $("status").textContent = "stopped";
    else showError(String(e));
  } finally {
    $("generate").disabled = false;
    $("stop").disabled = true;
    controller = null;
  }
}

$("generate").addEventListener("click", generate);
$("stop").addEventListener("click", () => controller && controller.abort());
$("api_key").addEventListener("change", loadModel);
loadModel();
</script>
</body>
</html>
`;
