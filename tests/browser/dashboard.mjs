// Drives a running coordinator's dashboard in a real browser (Debian's Chromium through
// playwright-core) and checks what a person would see:
//   1. /jobs lists every job the sweep expands to (read from the rendered DOM);
//   2. the sweep, tables and plots views draw (no error box, no stringified objects), the tables
//      with the comparisons under Table 1 and the note on its intervals;
//   3. on a running job's page, a newly reported epoch appears without a reload, and how long
//      after the coordinator stored it;
//   4. how long the first view took to render (navigation start to first drawn view).
// Usage: node dashboard.mjs BASE_URL JOB_IDS_FILE SCREENSHOT_DIR
// Prints one JSON line of figures; exits non-zero with a message when a check fails.
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const [base, idsFile, shots] = process.argv.slice(2);
const expected = readFileSync(idsFile, 'utf8').split(/\s+/).filter(Boolean).sort();
const fail = (msg) => { console.error(`FAIL: ${msg}`); process.exit(1); };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const figures = {};
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  page.on('pageerror', (e) => fail(`script error on the page: ${e.message}`));

  // 1. Every job listed.
  await page.goto(`${base}/jobs`);
  await page.waitForSelector('body[data-first-render-ms]', { timeout: 10000 });
  figures.first_render_ms = Number(await page.getAttribute('body', 'data-first-render-ms'));
  const listed = (await page.$$eval('#jobs tr[data-job-id]', (rows) => rows.map((r) => r.dataset.jobId))).sort();
  if (JSON.stringify(listed) !== JSON.stringify(expected)) {
    fail(`jobs listed ${JSON.stringify(listed)} != the sweep's ${JSON.stringify(expected)}`);
  }
  figures.jobs_listed = listed.length;

  // 2. Every view draws real content (no error box, no stringified objects), while the sweep runs.
  for (const [path, selector] of [['/', '#counts'], ['/tables', '#table1 table'], ['/plots', 'section.plot h2']]) {
    await page.goto(`${base}${path}`);
    await page.waitForSelector('body[data-first-render-ms]');
    if (!(await page.$(selector))) fail(`${path}: no ${selector} drawn`);
    const text = await page.evaluate(() => document.body.innerText);
    if (text.includes('[object') || text.includes('Could not load')) fail(`${path} drew: ${text.slice(0, 300)}`);
    if (path === '/tables') {
      // Under Table 1: the comparisons (grid against resnet here), with their interval, p and verdict.
      const heads = await page.$$eval('#table1 h3', (hs) => hs.map((h) => h.textContent));
      if (!heads.some((h) => h.startsWith('Comparisons'))) fail(`/tables: no comparisons under Table 1 (${heads})`);
      const cols = await page.$$eval('#table1 table', (ts) => ts.map((t) => [...t.querySelectorAll('th')].map((th) => th.textContent)));
      if (!cols.some((c) => ['compared', 'difference [95% CI]', 'p', 'verdict'].every((h) => c.includes(h)))) {
        fail(`/tables: the comparisons table lacks its columns: ${JSON.stringify(cols)}`);
      }
      if (!text.includes('95% confidence interval of the mean')) fail('/tables: Table 1 does not say what its intervals are');
    }
  }

  // 3. A running job with epochs to go; its page, then a new epoch without a reload.
  let job = null;
  for (let i = 0; i < 600 && !job; i++) {
    const s = await (await page.request.get(`${base}/api/sweep`)).json();
    job = s.running.find((j) => j.epoch + 1 < j.epochs_total);
    if (!job) await page.waitForTimeout(100);
  }
  if (!job) fail('no job was running with an epoch to go');
  let navigations = 0;
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations += 1; });
  await page.goto(`${base}/jobs/${job.id}`);
  await page.waitForSelector('#epochs', { timeout: 10000 });
  navigations = 0;
  await page.evaluate(() => { window.__sameDocument = true; });
  const before = await page.$$eval('#epochs tr[data-epoch]', (r) => r.length);
  await page.screenshot({ path: join(shots, 'dashboard-job.png'), fullPage: true });
  const grown = await page.waitForFunction(
    (n) => {
      const rows = document.querySelectorAll('#epochs tr[data-epoch]');
      return rows.length > n ? { rows: rows.length, at: Date.now() } : null;
    }, before, { timeout: 120000, polling: 50 }).then((h) => h.jsonValue()).catch(() => null);
  if (!grown) fail(`job ${job.id}: no new epoch appeared within 120 s (had ${before})`);
  if (navigations !== 0 || !(await page.evaluate(() => window.__sameDocument === true))) {
    fail('the page reloaded to show the new epoch');
  }
  // When the coordinator stored that epoch: from the job's data (the worker's report time).
  const detail = await page.request.get(`${base}/api/jobs/${job.id}`).then((r) => r.json()).catch(() => null);
  const reported = detail?.epochs?.[grown.rows - 1]?.reported_at;
  figures.job = job.id;
  figures.epochs_before = before;
  figures.epochs_after = grown.rows;
  if (typeof reported === 'number') figures.epoch_to_page_ms = Math.round(grown.at - reported * 1000);

  // 4. Screenshots, best effort: the sweep may have ended and its coordinator exited by now.
  try {
    await page.screenshot({ path: join(shots, 'dashboard-job.png'), fullPage: true });
    await page.goto(`${base}/`);
    await page.waitForSelector('body[data-first-render-ms]', { timeout: 5000 });
    await page.screenshot({ path: join(shots, 'dashboard-sweep.png'), fullPage: true });
  } catch (e) {
    console.error(`screenshots skipped: ${e.message.split('\n')[0]}`);
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(figures));
