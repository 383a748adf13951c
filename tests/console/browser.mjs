// Debian's chromium, driven by playwright-core, for the console's tests:
// one page that records every request, error and dialog it sees.
import path from 'node:path';
import { chromium } from 'playwright-core';

/** What run.sh passes: the server, the token, where screenshots go. */
export function settings() {
  const url = process.env.CONSOLE_URL;
  const token = process.env.CONSOLE_TOKEN;
  const shots = process.env.CONSOLE_SCREENSHOTS;
  if (!url || !token || !shots) {
    throw new Error('run the console tests through tests/console/run.sh (CONSOLE_URL, CONSOLE_TOKEN, CONSOLE_SCREENSHOTS)');
  }
  return { origin: new URL(url).origin, token, shots, uploadFile: process.env.CONSOLE_UPLOAD };
}

/** A headless browser and one page, with what the page did recorded. */
export async function launch() {
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // Chromium's sandbox refuses to run as root (CI runs as root).
    args: root ? ['--no-sandbox'] : [],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  const seen = { requests: [], pageErrors: [], consoleErrors: [], dialogs: [] };
  page.on('request', (request) => seen.requests.push(request));
  page.on('pageerror', (error) => seen.pageErrors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') seen.consoleErrors.push(message.text());
  });
  page.on('dialog', async (dialog) => {
    seen.dialogs.push({ type: dialog.type(), message: dialog.message() });
    if (dialog.type() === 'confirm') await dialog.accept();
    else await dialog.dismiss();
  });
  return { browser, page, seen };
}

/** A full-page screenshot, NAME.png among the others. */
export async function shot(page, shots, name) {
  await page.screenshot({ path: path.join(shots, name + '.png'), fullPage: true });
}

/** Opens a view from the navigation bar. */
export async function open(page, view) {
  await page.click('#nav a[data-view="' + view + '"]');
  await page.waitForSelector('#view-' + view + ':not([hidden])');
}
