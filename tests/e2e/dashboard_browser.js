// Drives Debian's Chromium (headless, through the DevTools protocol with npm's puppeteer-core)
// against a running server's dashboard, and prints what the rendered pages showed as one JSON
// object; dashboard_e2e_test.sh judges it. Nothing here asserts: a page that never shows
// something is reported as a timeout with what it did show.
//
//   node dashboard_browser.js MODULES CHROMIUM BASE_URL JOB_ID SECOND_JOB_ID TOKEN SCREENSHOT_DIR
'use strict';

const [modules, chromium, base, jobId, secondJobId, token, screenshots] = process.argv.slice(2);
const puppeteer = require(`${modules}/puppeteer-core`);

const kWait = 180000;  // generous: a loaded 2-core machine trains and renders slowly
// The job's end: its 8 epochs take ~30 s here and ~7 min in a sanitizer build.
const kJobEndWait = 900000;

const out = { steps: [] };
const note = (step) => { out.steps.push(step); process.stderr.write(`dashboard_browser: ${step}\n`); };

// Points drawn on a job page's charts: [{series, epoch, value}] per chart.
const points = (page, chart) => page.$$eval(`#${chart} circle.point`, (nodes) => nodes.map((n) => ({
  series: n.dataset.series, epoch: Number(n.dataset.epoch), value: Number(n.dataset.value) })));

async function main() {
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1280,900'],
    defaultViewport: { width: 1280, height: 900 },
    // A waitForFunction is one DevTools call that lasts until its condition holds; puppeteer
    // gives every call 180 s by default ("Waiting failed" then, whatever the wait's timeout).
    protocolTimeout: kJobEndWait + 60000,
  });
  try {
    const page = await browser.newPage();
    const consoleErrors = [];
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    const failedRequests = [];
    page.on('requestfailed', (r) => {
      // Event streams the page itself closes when it moves on are not failures.
      if (!r.url().endsWith('/events') && !r.url().includes('/events?')) failedRequests.push(r.url());
    });
    page.on('request', (r) => {
      if (!r.url().startsWith(base)) failedRequests.push(`outside request: ${r.url()}`);
    });

    // 1. The overview lists the running job, and its epoch count rises.
    await page.goto(`${base}/#/`, { waitUntil: 'load' });
    const row = `tr[data-job-id="${jobId}"]`;
    await page.waitForSelector(row, { timeout: kWait });
    out.overview_first_epoch = Number(await page.$eval(row, (r) => r.dataset.epoch));
    out.overview_first_state = await page.$eval(row, (r) => r.dataset.state);
    await page.waitForFunction((selector, first) => {
      const r = document.querySelector(selector);
      return r && Number(r.dataset.epoch) > first;
    }, { timeout: kWait, polling: 200 }, row, out.overview_first_epoch);
    out.overview_later_epoch = Number(await page.$eval(row, (r) => r.dataset.epoch));
    out.overview_eta_cell = await page.$eval(`${row} td.eta`, (c) => c.textContent);
    note(`overview: epoch ${out.overview_first_epoch} -> ${out.overview_later_epoch}`);

    // 2. The job page: curves that grow while the job runs, opened mid-job.
    await page.goto(`${base}/#/jobs/${jobId}`, { waitUntil: 'load' });
    await page.waitForFunction(() => document.querySelectorAll('#loss-chart circle.point').length > 0,
                               { timeout: kWait, polling: 100 });
    const firstPoints = await points(page, 'loss-chart');
    out.job_page_first_epochs = firstPoints.filter((p) => p.series === 'train').map((p) => p.epoch);
    await page.waitForFunction((n) => document.querySelectorAll('#loss-chart circle.point[data-series="train"]').length > n,
                               { timeout: kWait, polling: 100 }, out.job_page_first_epochs.length);
    out.job_page_live_epochs = (await points(page, 'loss-chart')).filter((p) => p.series === 'train').map((p) => p.epoch);
    out.job_page_state_mid_job = await page.$eval('#job-state', (s) => s.textContent);
    await page.screenshot({ path: `${screenshots}/dashboard-job-running.png` });
    note(`job page: train points ${out.job_page_first_epochs} then ${out.job_page_live_epochs}`);

    // 3. The end: the state, every epoch's point, and the values the page drew.
    await page.waitForFunction(() => document.getElementById('view').dataset.streamEnded === 'true',
                               { timeout: kJobEndWait, polling: 200 });
    out.job_page_final_state = await page.$eval('#job-state', (s) => s.textContent);
    out.loss_points = await points(page, 'loss-chart');
    out.accuracy_points = await points(page, 'accuracy-chart');
    out.job_page_epoch_text = await page.$eval('#job-epoch', (s) => s.textContent);
    out.job_page_model_link = await page.$eval('#job-facts a', (a) => a.textContent).catch(() => '');
    await page.screenshot({ path: `${screenshots}/dashboard-job-done.png`, fullPage: true });
    note(`job page: ${out.job_page_final_state}, model ${out.job_page_model_link}`);

    // 4. Cancel the second job (queued or running) from its row: refused without the token, done with it.
    await page.goto(`${base}/#/`, { waitUntil: 'load' });
    const secondRow = `tr[data-job-id="${secondJobId}"]`;
    await page.waitForSelector(`${secondRow} button[data-action="cancel"]`, { timeout: kWait });
    await page.click(`${secondRow} button[data-action="cancel"]`);
    await page.waitForFunction(() => {
      const m = document.getElementById('message');
      return !m.hidden && m.className === 'error';
    }, { timeout: kWait, polling: 100 });
    out.cancel_without_token_message = await page.$eval('#message', (m) => m.textContent);
    await page.type('#token', token);
    await page.click('#token-form button');
    await page.waitForSelector(`${secondRow} button[data-action="cancel"]:not([disabled])`, { timeout: kWait });
    await page.click(`${secondRow} button[data-action="cancel"]`);
    await page.waitForFunction((selector) => {
      const r = document.querySelector(selector);
      return r && r.dataset.state === 'CANCELLED';
    }, { timeout: kWait, polling: 200 }, secondRow);
    out.cancelled_state = await page.$eval(secondRow, (r) => r.dataset.state);
    note(`cancel: "${out.cancel_without_token_message}", then ${out.cancelled_state}`);

    // 5. The model: confusion matrix, sample grid, deploy.
    const modelId = out.job_page_model_link;
    await page.goto(`${base}/#/models/${modelId}`, { waitUntil: 'load' });
    await page.waitForFunction(() => document.querySelectorAll('#samples .sample').length > 0 &&
                                     document.querySelector('#confusion-matrix'),
                               { timeout: kWait, polling: 200 });
    out.model_accuracy_text = await page.$eval('#model-accuracy', (s) => s.textContent);
    out.confusion = await page.$$eval('#confusion-matrix tbody tr',
      (rows) => rows.map((r) => [...r.querySelectorAll('td')].map((c) => Number(c.textContent))));
    out.samples = await page.$$eval('#samples .sample', (nodes) => nodes.map((n) => ({
      label: Number(n.dataset.label), predicted: Number(n.dataset.predicted),
      inked: (() => {  // the canvas shows a digit: some dark pixels, mostly white
        const c = n.querySelector('canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let dark = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] < 128) ++dark;
        return dark;
      })() })));
    await page.screenshot({ path: `${screenshots}/dashboard-model.png`, fullPage: true });
    await page.click('#deploy-model');
    await page.waitForFunction(() => /is deployed/.test(document.getElementById('message').textContent),
                               { timeout: kWait, polling: 100 });
    out.deploy_message = await page.$eval('#message', (m) => m.textContent);
    await page.goto(`${base}/#/`, { waitUntil: 'load' });
    await page.waitForSelector(`tr[data-model-id="${modelId}"][data-deployed="true"] .deployed`, { timeout: kWait });
    out.deployed_marked = true;
    await page.screenshot({ path: `${screenshots}/dashboard-overview.png`, fullPage: true });
    note(`model ${modelId}: ${out.model_accuracy_text}, ${out.samples.length} samples, deployed`);

    // 6. A second tab opened after the job ended replays every epoch from the event log.
    const late = await browser.newPage();
    await late.goto(`${base}/#/jobs/${jobId}`, { waitUntil: 'load' });
    await late.waitForFunction(() => document.getElementById('view').dataset.streamEnded === 'true',
                               { timeout: kWait, polling: 100 });
    out.late_page_points = (await points(late, 'loss-chart')).length;

    out.console_errors = consoleErrors;
    out.failed_requests = failedRequests;
  } catch (error) {
    out.error = String(error && error.stack || error);
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main();
