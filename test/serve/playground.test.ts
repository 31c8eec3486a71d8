// The playground page in headless Chromium: type a prompt, press Generate, and the completion streams into the
// page (many DOM updates, not one), ends with a tokens/s line, equals the API's text for the same seeded request,
// and the console stays free of errors.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Browser } from './cdp.js';
import { startServer, tinyCheckpoint, type TestServer } from './fixtures.js';

let dir = '';
let srv: TestServer;

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-playground-'));
  srv = await startServer(await tinyCheckpoint(dir));
});

after(async () => {
  await srv?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the playground streams a completion in headless Chromium, with no console errors', async () => {
  assert.equal(spawnSync('sh', ['-c', 'command -v chromium']).status, 0, "Debian's chromium is not installed: run bash scripts/setup.sh (it installs it)");
  const browser = Browser.launch();
  try {
    const errors: string[] = [];
    browser.on((method, params) => {
      if (method === 'Runtime.exceptionThrown') errors.push(JSON.stringify(params));
      if (method === 'Runtime.consoleAPICalled' && params.type === 'error') errors.push(JSON.stringify(params.args));
      if (method === 'Log.entryAdded' && (params.entry as { level: string }).level === 'error') errors.push(JSON.stringify(params.entry));
    });
    const { targetId } = (await browser.send('Target.createTarget', { url: 'about:blank' })) as { targetId: string };
    const { sessionId } = (await browser.send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
    for (const domain of ['Runtime', 'Log', 'Page']) await browser.send(`${domain}.enable`, {}, sessionId);
    const loaded = browser.waitFor('Page.loadEventFired');
    await browser.send('Page.navigate', { url: `${srv.url}/` }, sessionId);
    await loaded;
    // The model list is fetched on load.
    const end = Date.now() + 10_000;
    while ((await browser.evaluate(sessionId, "document.getElementById('model-id').textContent")) !== 'tiny.pt') {
      assert.ok(Date.now() < end, 'the page shows the model id');
      await new Promise((r) => setTimeout(r, 50));
    }
    // Type the prompt (replacing the default), set the sampling controls.
    await browser.evaluate(sessionId, "const p = document.getElementById('prompt'); p.focus(); p.select(); true");
    await browser.send('Input.insertText', { text: 'In the beginning' }, sessionId);
    await browser.evaluate(sessionId, "document.getElementById('max_tokens').value = '40'; document.getElementById('seed').value = '77'; document.getElementById('temperature').value = '0.9'; true");
    // Count DOM updates of the completion as they happen, then press Generate.
    await browser.evaluate(
      sessionId,
      `window.__updates = 0; new MutationObserver(() => { const c = document.getElementById('completion'); if (c && c.textContent) window.__updates++; })
         .observe(document.getElementById('output'), { childList: true, subtree: true, characterData: true }); document.getElementById('generate').click(); true`,
    );
    const doneBy = Date.now() + 20_000;
    let status = '';
    while (!/^done/.test(status)) {
      assert.ok(Date.now() < doneBy, `generation finished in the page (status: ${status})`);
      await new Promise((r) => setTimeout(r, 50));
      status = String(await browser.evaluate(sessionId, "document.getElementById('status').textContent"));
    }
    const text = String(await browser.evaluate(sessionId, "document.getElementById('completion').textContent"));
    const updates = Number(await browser.evaluate(sessionId, 'window.__updates'));
    assert.match(status, /^done \((length|stop)\): \d+ tokens in [\d.]+ s, [\d.]+ tokens\/s/);
    assert.ok(updates >= 5, `the text arrived in pieces (${updates} updates)`);
    const api = await fetch(`${srv.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'In the beginning', max_tokens: 40, seed: 77, temperature: 0.9, top_p: 1 }) });
    const expected = ((await api.json()) as { choices: { text: string }[] }).choices[0]!.text;
    assert.equal(text, expected, 'the page shows the same text as the API for the same seeded request');
    assert.equal(String(await browser.evaluate(sessionId, "document.querySelector('#output .prompt').textContent")), 'In the beginning');
    assert.deepEqual(errors, [], 'no console errors');
  } finally {
    await browser.close();
  }
});
