// The console in a real browser (Debian's chromium, driven by
// playwright-core) against the real `entitle serve` that
// tests/console/run.sh starts: it passes the server's URL, the admin
// token, a license file to upload and where screenshots go.
//   node --test tests/console/console.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';

const url = process.env.CONSOLE_URL;
const token = process.env.CONSOLE_TOKEN;
const uploadFile = process.env.CONSOLE_UPLOAD;
const shots = process.env.CONSOLE_SCREENSHOTS;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
if (!url || !token || !uploadFile || !shots) {
  throw new Error('run this test through tests/console/run.sh (CONSOLE_URL, CONSOLE_TOKEN, CONSOLE_UPLOAD, CONSOLE_SCREENSHOTS)');
}
const origin = new URL(url).origin;
const SCRIPT_CLIENT = '<script>alert(1)</script>';
// The console's first load (page, script, style, the calls of the
// overview), as sent on the wire: it must stay small on a slow LAN link.
const FIRST_LOAD_BOUND = 200 * 1024;

let browser;
let page;
const requests = [];
const dialogs = [];
const pageErrors = [];
const consoleErrors = [];

async function admin(method, route) {
  return fetch(origin + route, { method, headers: { Authorization: 'Bearer ' + token } });
}

async function shot(name) {
  await page.screenshot({ path: path.join(shots, name + '.png'), fullPage: true });
}

async function open(view) {
  await page.click('#nav a[data-view="' + view + '"]');
  await page.waitForSelector('#view-' + view + ':not([hidden])');
}

before(async () => {
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  browser = await chromium.launch({
    executablePath,
    headless: true,
    // Chromium's sandbox refuses to run as root (CI runs as root).
    args: root ? ['--no-sandbox'] : [],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on('request', (request) => requests.push(request));
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  page.on('dialog', async (dialog) => {
    dialogs.push({ type: dialog.type(), message: dialog.message() });
    if (dialog.type() === 'confirm') await dialog.accept();
    else await dialog.dismiss();
  });
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

test('the first load is small and signing in takes the token with Enter', async (t) => {
  await page.goto(origin + '/admin/', { waitUntil: 'networkidle' });
  await page.waitForSelector('#sign-in:not([hidden])');
  await shot('1-sign-in');

  // A wrong token is refused, and stays out of the tab.
  await page.fill('#token', 'not-the-token');
  await page.press('#token', 'Enter');
  await page.waitForFunction(() => /refused/.test(document.getElementById('sign-in-error').textContent));
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);

  await page.fill('#token', token);
  await page.press('#token', 'Enter');
  await page.waitForSelector('#view-overview:not([hidden])');
  await page.waitForSelector('#overview-licenses table');
  await page.waitForLoadState('networkidle');
  assert.ok(!page.url().includes(token), 'the token is never in the URL');
  assert.equal(await page.inputValue('#token'), '', 'the field is cleared');

  let bytes = 0;
  for (const request of requests) {
    const sizes = await request.sizes();
    bytes += sizes.responseHeadersSize + sizes.responseBodySize;
  }
  t.diagnostic(`console first load: ${requests.length} requests, ${bytes} bytes`);
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
  assert.match(text, /render-node-2/);
  assert.ok((await page.locator('#events tbody tr').count()) >= 3);
  assert.equal(await page.evaluate(() => document.scripts.length), 1);
  await shot('7-events');
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
  // A refused token is logged by the browser as a failed load; nothing else may be.
  assert.deepEqual(consoleErrors.filter((e) => !/401/.test(e)), []);
  assert.deepEqual(dialogs.filter((d) => d.type === 'alert'), []);
});

test('signing out forgets the token', async () => {
  await page.click('#sign-out');
  await page.waitForSelector('#sign-in:not([hidden])');
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  await page.reload();
  await page.waitForSelector('#sign-in:not([hidden])');
  assert.equal(await page.isHidden('#nav'), true);
});
