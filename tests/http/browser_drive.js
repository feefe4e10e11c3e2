// Drives Debian's chromium (headless, fresh profile) with playwright-core:
// opens the web example at the URL given, waits until it shows "done" or an
// error, and prints what the page shows as JSON on stdout.
// Usage: node browser_drive.js URL
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const CHROMIUM = '/usr/bin/chromium';

async function main() {
  const url = process.argv[2];
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-http-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const console_ = [];
  try {
    const page = await context.newPage();
    page.on('console', (msg) => console_.push(msg.type() + ': ' + msg.text()));
    await page.goto(url, { waitUntil: 'load', timeout: 20000 });
    await page.waitForFunction(() => {
      const s = document.getElementById('status').textContent;
      return s === 'done' || s.startsWith('error');
    }, null, { timeout: 20000 });
    const text = (id) => page.textContent('#' + id);
    const out = {
      status: await text('status'),
      user_token: await text('user-token'),
      renewed_token: await text('renewed-token'),
      expire_time: await text('expire-time'),
      user_id: await text('user-id'),
      other_status: await text('other-status'),
      origin: await page.evaluate(() => window.location.origin),
      console: console_,
    };
    process.stdout.write(JSON.stringify(out) + '\n');
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
