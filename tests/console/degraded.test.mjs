// The console against a server that keeps no history (`--history-days 0`:
// its history and events routes answer 404), as an older server would:
// each of those views says so, and the rest of the console still works.
// run.sh starts that server after console.test.mjs.
//   node --test tests/console/degraded.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, open, settings, shot } from './browser.mjs';

const { origin, token, shots } = settings();

let browser;
let page;
let seen;

before(async () => {
  ({ browser, page, seen } = await launch());
  await page.goto(origin + '/admin/');
  await page.fill('#token', token);
  await page.press('#token', 'Enter');
  await page.waitForSelector('#view-overview:not([hidden])');
});

after(async () => {
  if (browser) await browser.close();
});

test('the overview works without the history', async () => {
  await page.waitForSelector('#pools table');
  assert.match(await page.textContent('#overview-licenses'), /lic_site/);
});

test('the history says that this server has none', async () => {
  const direct = await fetch(origin + '/admin/history', { headers: { Authorization: 'Bearer ' + token } });
  assert.equal(direct.status, 404);

  await open(page, 'history');
  await page.waitForFunction(() => /not available/.test(document.getElementById('history-message').textContent));
  const message = await page.textContent('#history-message');
  assert.match(message, /The history is not available: this server answers 404 to GET \/admin\/history/);
  // The server's own reason, when it gives one.
  assert.match(message, /history is off on this server/);
  assert.equal(await page.getAttribute('#history-message', 'class'), 'message error');
  assert.equal(await page.locator('#history-chart svg').count(), 0);
  // The pools to choose from still come from the server.
  assert.ok(await page.locator('#history-pool option[value="render"]').count() === 1);

  await page.click('#history-csv');
  await page.waitForFunction(() => /CSV download is not available/.test(document.getElementById('history-message').textContent));
  await shot(page, shots, '9-history-off');
});

test('the events say that this server has none', async () => {
  await open(page, 'events');
  await page.waitForFunction(() => /not available/.test(document.getElementById('events-message').textContent));
  assert.match(await page.textContent('#events-message'), /GET \/admin\/events/);
  assert.equal(await page.locator('#events table').count(), 0);
});

test('nothing but the missing routes failed, and nothing left the server', async () => {
  const elsewhere = seen.requests
    .map((r) => r.url())
    .filter((u) => !u.startsWith('data:') && !u.startsWith('blob:'))
    .filter((u) => new URL(u).origin !== origin);
  assert.deepEqual(elsewhere, []);
  assert.deepEqual(seen.pageErrors, []);
  // One failed load each: the history, its CSV, the events.
  assert.equal(seen.consoleErrors.length, 3, seen.consoleErrors.join('\n'));
  assert.ok(seen.consoleErrors.every((e) => /status of 404/.test(e)), seen.consoleErrors.join('\n'));
});
