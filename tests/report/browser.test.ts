// Opens the generated report from file:// in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core) and checks that vega-embed rendered every chart, with no console
// error and no request leaving file://, with and without a base model (epoch 0) row. Skips,
// saying why, only if Chromium cannot start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { analyze } from '../../src/analysis/index.ts';
import { writeReport } from '../../src/report/index.ts';
import { syntheticDrilldown, syntheticInput, withBase } from '../analysis/fixtures.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

async function launch(): Promise<{ context: BrowserContext; userDataDir: string } | { error: string }> {
  const userDataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-chromium-'));
  try {
    const context = await chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 30_000 });
    return { context, userDataDir };
  } catch (err) {
    await fs.rm(userDataDir, { recursive: true, force: true });
    return { error: (err as Error).message.split('\n')[0]! };
  }
}

test('the report renders every chart in headless Chromium from file://, without console errors', async (t) => {
  const input = syntheticInput({ epochs: 10, heldout: 80, dev: 10, samples: 2, invalidRate: 0.1, bootstrap: 60 });
  const reports: Array<{ html: string; base: boolean }> = [];
  for (const study of [input, withBase(input, { nllPerToken: 2.4 })]) {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-browser-'));
    const files = await writeReport(dir, analyze(study), syntheticDrilldown(study, 3), { title: 'browser test <script>alert(1)</script>' });
    reports.push({ html: files.html, base: study !== input });
  }

  const launched = await launch();
  if ('error' in launched) {
    t.skip(`Chromium could not start at ${CHROMIUM}: ${launched.error}`);
    return;
  }
  const { context, userDataDir } = launched;
  try {
    for (const report of reports) {
      const page = await context.newPage();
      const problems: string[] = [];
      const dialogs: string[] = [];
      const offsite: string[] = [];
      page.on('console', (msg) => {
        if (msg.type() === 'error') problems.push(`console.error: ${msg.text()}`);
      });
      page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
      page.on('dialog', (d) => {
        dialogs.push(d.message());
        void d.dismiss();
      });
      page.on('request', (req) => {
        if (!/^(file|data|blob|about):/.test(req.url())) offsite.push(req.url());
      });

      await page.goto(pathToFileURL(report.html).href);
      const chartIds = await page.$$eval('[data-chart]', (els) => els.map((el) => el.getAttribute('data-chart')));
      assert.deepEqual(chartIds, ['epochs', 'scatter', 'distribution', 'trainloss', 'stability']);
      // vega-embed renders asynchronously: wait until every container holds an svg or canvas.
      await page.waitForFunction(
        () => Array.from(document.querySelectorAll('[data-chart]')).every((el) => el.querySelector('svg, canvas') !== null),
        null,
        { timeout: 30_000 },
      );
      const rendered = await page.$$eval('[data-chart]', (els) =>
        els.map((el) => ({ id: el.getAttribute('data-chart'), marks: el.querySelectorAll('svg .mark-line, svg .mark-symbol, svg .mark-rect, svg .mark-text, canvas').length })),
      );
      for (const r of rendered) assert.ok(r.marks > 0, `chart ${r.id} has marks`);
      assert.deepEqual(problems, []);
      assert.deepEqual(dialogs, [], 'no script from the data ran');
      assert.deepEqual(offsite, [], 'the report loads nothing from outside the file');
      // The escaped title shows as text.
      assert.equal(await page.title(), 'browser test <script>alert(1)</script>');
      // The base model's reference lines are drawn, labelled, only when there is a base.
      const epochText = await page.$eval('[data-chart="epochs"]', (el) => el.textContent ?? '');
      assert.equal(epochText.includes('base (epoch 0)'), report.base);
      await page.close();
    }
  } finally {
    await context.close();
    await fs.rm(userDataDir, { recursive: true, force: true });
  }
});
