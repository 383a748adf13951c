// The console in a real browser (Debian's chromium, driven by
// playwright-core) against the real `entitle serve` that
// tests/console/run.sh starts: it passes the server's URL, the admin
// token, a license file to upload and where screenshots go.
//   node --test tests/console/console.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { launch, open as openView, settings, shot as screenshot } from './browser.mjs';

const { origin, token, shots, uploadFile } = settings();
if (!uploadFile) throw new Error('CONSOLE_UPLOAD names the license file to upload');
const SCRIPT_CLIENT = '<script>alert(1)</script>';
// The console's first load (page, script, style, the calls of the
// overview), as sent on the wire: it must stay small on a slow LAN link.
const FIRST_LOAD_BOUND = 200 * 1024;

let browser;
let page;
let requests;
let dialogs;
let pageErrors;
let consoleErrors;

async function admin(method, route) {
  return fetch(origin + route, { method, headers: { Authorization: 'Bearer ' + token } });
}

const shot = (name) => screenshot(page, shots, name);
const open = (view) => openView(page, view);

before(async () => {
  let seen;
  ({ browser, page, seen } = await launch());
  ({ requests, dialogs, pageErrors, consoleErrors } = seen);
});

after(async () => {
  if (browser) await browser.close();
});

test('the console is served with a strict policy, and /admin sends to it', async () => {
  const page = await fetch(origin + '/admin/');
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /^text\/html/);
  const csp = page.headers.get('content-security-policy');
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.match(csp, /connect-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
  assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
  assert.match(page.headers.get('cache-control'), /no-cache/);
  const html = await page.text();
  assert.doesNotMatch(html, /<script>(?!<)|https?:\/\//, 'no inline script, no outside address');

  // Unchanged files are not sent again.
  const etag = page.headers.get('etag');
  assert.ok(etag);
  const again = await fetch(origin + '/admin/', { headers: { 'If-None-Match': etag } });
  assert.equal(again.status, 304);

  const bare = await fetch(origin + '/admin', { redirect: 'manual' });
  assert.equal(bare.status, 308);
  assert.equal(bare.headers.get('location'), '/admin/');

  for (const asset of ['/admin/console.js', '/admin/console.css']) {
    const answer = await fetch(origin + asset);
    assert.equal(answer.status, 200, asset);
    assert.equal(answer.headers.get('x-content-type-options'), 'nosniff');
  }
});

test('the first load is small, and signing in takes the token with Enter', async (t) => {
  await page.goto(origin + '/admin/', { waitUntil: 'networkidle' });
  await page.waitForSelector('#sign-in:not([hidden])');
  await shot('1-sign-in');

  await page.fill('#token', token);
  await page.press('#token', 'Enter');
  await page.waitForSelector('#view-overview:not([hidden])');
  await page.waitForSelector('#overview-licenses table');
  await page.waitForLoadState('networkidle');
  assert.ok(!page.url().includes(token), 'the token is never in the URL');
  assert.equal(await page.inputValue('#token'), '', 'the field is cleared');

  // What came over the wire, headers included, until the overview shows.
  let bytes = 0;
  const each = [];
  for (const request of requests) {
    const sizes = await request.sizes();
    const size = sizes.responseHeadersSize + sizes.responseBodySize;
    bytes += size;
    each.push(new URL(request.url()).pathname + ' ' + size);
  }
  t.diagnostic(`console first load: ${requests.length} requests, ${bytes} bytes (${each.join(', ')})`);
  assert.ok(bytes > 0 && bytes <= FIRST_LOAD_BOUND, `first load ${bytes} bytes, bound ${FIRST_LOAD_BOUND}`);
});

test('the overview shows the pools, the licenses and a grace banner', async () => {
  const banners = await page.textContent('#banners');
  assert.match(banners, /Simulation add-on \(lic_addon\) expired on .*grace period ends on/);
  const licenses = await page.textContent('#overview-licenses');
  assert.match(licenses, /lic_site/);
  assert.match(licenses, /grace/);
  await page.waitForSelector('#pools table');
  const pools = await page.$$eval('#pools tbody tr', (rows) => rows.map((r) => r.textContent));
  assert.ok(pools.some((row) => /render/.test(row) && /1 of 1/.test(row)), pools.join(' | '));
  assert.ok(pools.some((row) => /License pool/.test(row) && /1 of 3/.test(row)), pools.join(' | '));
  await shot('2-overview');
});

test('the leases show a hostile client name as text, and force release frees its seat', async () => {
  await open('leases');
  const cell = page.locator('#leases td .client', { hasText: SCRIPT_CLIENT });
  await cell.waitFor();
  assert.equal(await cell.textContent(), SCRIPT_CLIENT);
  // Text, not markup: the page still has its one script, and no alert fired.
  assert.equal(await page.evaluate(() => document.scripts.length), 1);
  assert.deepEqual(dialogs.filter((d) => d.type === 'alert'), []);
  await shot('3-leases');

  const row = page.locator('#leases tbody tr', { hasText: SCRIPT_CLIENT });
  await row.locator('button', { hasText: 'Force release' }).click();
  await page.waitForFunction(() => /Released the seat/.test(document.getElementById('leases-message').textContent));
  await row.waitFor({ state: 'detached' });
  assert.equal(dialogs.length, 1);
  assert.equal(dialogs[0].type, 'confirm');
  assert.ok(dialogs[0].message.includes(SCRIPT_CLIENT), dialogs[0].message);
  assert.match(await page.textContent('#leases'), /render-node-1/);

  const answer = await (await admin('GET', '/admin/leases')).json();
  assert.deepEqual(answer.items.map((l) => l.client), ['render-node-1']);
  await shot('4-leases-released');
});

test('the history draws seats in use and denials, and its CSV downloads', async () => {
  await open('history');
  // The pools to choose from are the server's.
  await page.waitForSelector('#history-pool option[value="render"]', { state: 'attached' });
  await page.selectOption('#history-range', '3600:minute');
  await page.click('#history-form button[type=submit]');
  await page.waitForFunction(() => /by minute .* license pool/.test(document.getElementById('history-summary').textContent));
  const line = page.locator('#history-chart svg path.in-use');
  const d = await line.getAttribute('d');
  // One point a minute over the hour, the seat held by the hostile client among them.
  assert.match(d, /^M[\d.]+ [\d.]+ H[\d.]+( V[\d.]+ H[\d.]+){59,}$/, d);
  assert.match(await page.textContent('#history-summary'), /Peak seats in use 1, denials 0/);
  const labels = await page.$$eval('#history-chart svg .axis text', (texts) => texts.map((t) => t.textContent));
  assert.ok(labels.length >= 9, labels.join(','));
  assert.ok(labels.includes('0') && labels.includes('1'), labels.join(','));
  assert.ok(labels.some((l) => /^\d\d:\d\d$/.test(l)), labels.join(','));

  // The render pool: its one seat, and the checkout it refused as a bar.
  await page.selectOption('#history-pool', 'render');
  await page.click('#history-form button[type=submit]');
  await page.waitForFunction(() => /by minute .* pool of render/.test(document.getElementById('history-summary').textContent));
  assert.match(await page.textContent('#history-summary'), /Peak seats in use 1, denials 1/);
  assert.equal(await page.locator('#history-chart svg .denials-bars rect.denials').count(), 1);
  await shot('5-history');

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#history-csv')]);
  assert.match(download.suggestedFilename(), /^history-.*\.csv$/);
  const csv = await readFile(await download.path(), 'utf8');
  const [header, ...rows] = csv.trim().split(/\r?\n/);
  assert.equal(header, 'at,in_use_peak,denials,queued_peak');
  assert.ok(rows.length >= 60, csv);
  assert.ok(rows.some((row) => /,1,1,0$/.test(row)), 'the minute of the refused render seat: ' + csv);
});

test('a license file uploads, and a license is removed', async () => {
  await open('licenses');
  await page.waitForSelector('#licenses table');
  await page.setInputFiles('#license-file', uploadFile);
  await page.click('#license-upload button[type=submit]');
  await page.waitForFunction(() => /Added license/.test(document.getElementById('licenses-message').textContent));
  assert.match(await page.textContent('#licenses'), /lic_upload/);
  await shot('6-licenses');
  const listed = await (await admin('GET', '/admin/license')).json();
  assert.ok(listed.items.some((l) => l.id === 'lic_upload'));

  const row = page.locator('#licenses tbody tr', { hasText: 'lic_upload' });
  await row.locator('button', { hasText: 'Remove' }).click();
  await row.waitFor({ state: 'detached' });
  assert.match(await page.textContent('#licenses-message'), /Removed license Seat top-up \(lic_upload\)/);
  const after = await (await admin('GET', '/admin/license')).json();
  assert.ok(!after.items.some((l) => l.id === 'lic_upload'));
});

test('the events list what happened, as text', async () => {
  await open('events');
  await page.waitForSelector('#events table');
  const text = await page.textContent('#events');
  assert.ok(text.includes(SCRIPT_CLIENT), 'the hostile client name is shown as text');
  assert.match(text, /deny\s*render\s*render-node-2\s*FLOATING_EXHAUSTED/);
  assert.match(text, /force_release\s*license pool/);
  assert.ok((await page.locator('#events tbody tr').count()) >= 3);
  assert.equal(await page.evaluate(() => document.scripts.length), 1);
  await shot('7-events');
});

test('signing out forgets the token, and a wrong one is refused', async () => {
  await page.click('#sign-out');
  await page.waitForSelector('#sign-in:not([hidden])');
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  await page.reload();
  await page.waitForSelector('#sign-in:not([hidden])');
  assert.equal(await page.isHidden('#nav'), true);

  // A wrong token is refused, and stays out of the tab.
  await page.fill('#token', 'not-the-token');
  await page.press('#token', 'Enter');
  await page.waitForFunction(() => /refused/.test(document.getElementById('sign-in-error').textContent));
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  assert.equal(await page.isHidden('#nav'), true);
  await shot('8-refused');
});

test('every request stayed on the server, and nothing failed', async () => {
  const elsewhere = requests
    .map((r) => r.url())
    // data: and blob: are the page's own bytes, not requests on the network.
    .filter((u) => !u.startsWith('data:') && !u.startsWith('blob:'))
    .filter((u) => new URL(u).origin !== origin);
  assert.deepEqual(elsewhere, []);
  assert.ok(requests.length >= 10);
  assert.deepEqual(pageErrors, []);
  // The browser logs the wrong token's 401 as a failed load; nothing else may fail.
  assert.deepEqual(consoleErrors.filter((e) => !/status of 401/.test(e)), []);
  assert.equal(consoleErrors.length, 1, consoleErrors.join('\n'));
  assert.deepEqual(dialogs.filter((d) => d.type === 'alert'), []);
});
