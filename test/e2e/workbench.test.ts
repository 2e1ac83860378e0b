// UI end-to-end: code-server 4.100.3 + Debian Chromium + playwright-core with the packaged .vsix
// installed. A user's path through the product, with a screenshot of each step in
// test/e2e/artifacts/:
//   right-click the demo dataset folder → Train U-Flow → the status bar shows epochs advancing →
//   done → palette Evaluate → the Results view shows the metrics table and the gallery with heatmaps
//   → a test image opened with U-Flow Image View and hovered shows the overlay and the score;
//   hovers on an image path in Markdown and on a Runs view item show the anomaly map;
//   the daemon killed mid-training: restarted, the status bar says the run was interrupted, and the
//   run's last checkpoint is still listed.
// Run through test/e2e/run.mjs (npm run test:e2e), which builds the .vsix first.
import * as assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import {
  cleanup,
  ensureCodeServer,
  installExtension,
  launchChromium,
  prepareDirs,
  scratchDir,
  skipReason,
  startCodeServer,
  workbenchUrl,
  type CodeServer,
} from '../../scripts/e2e/harness.mjs';
import { makeWorkspace, TINY_TRAIN_CONFIG } from '../vscode/workspace.mjs';
import {
  chooseMenuItem,
  closeAllEditors,
  contextMenuItem,
  daemonPid,
  dismissNotifications,
  expandPath,
  expandTreeRow,
  explorerRow,
  runCommand,
  screenshot,
  settled,
  statusItem,
  waitForWorkbench,
  webview,
} from './workbench.js';

const skip = skipReason();
const vsix = process.env.UFLOW_E2E_VSIX ?? '';

describe('U-Flow in VS Code (code-server + Chromium)', { skip: skip ?? (!existsSync(vsix) ? `no .vsix at '${vsix}' (run npm run test:e2e)` : false) }, () => {
  let root: string;
  let server: CodeServer;
  let browser: Browser;
  let page: Page;
  let ws: string;
  let crashWs: string;

  before(async () => {
    root = scratchDir('ui');
    const entry = ensureCodeServer();
    const dirs = prepareDirs({ root });
    installExtension(entry, dirs, vsix);
    ws = await makeWorkspace(join(root, 'inspection'), {
      trainConfig: { ...TINY_TRAIN_CONFIG, trainer: { ...TINY_TRAIN_CONFIG.trainer, epochs: 8 } },
    });
    crashWs = await makeWorkspace(join(root, 'long-training'), {
      trainConfig: { ...TINY_TRAIN_CONFIG, trainer: { ...TINY_TRAIN_CONFIG.trainer, epochs: 500, validate_every: 0 } },
    });
    server = await startCodeServer({ entry, dirs });
    browser = await launchChromium({ profileRoot: join(root, 'chromium') });
    page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    if (process.env.UFLOW_E2E_VERBOSE) {
      page.on('console', (m) => process.stderr.write(`[browser:${m.type()}] ${m.text().slice(0, 500)}\n`));
      page.on('pageerror', (e) => process.stderr.write(`[browser:pageerror] ${e.message}\n`));
    }
    await page.goto(workbenchUrl(server, ws));
    await waitForWorkbench(page);
  });

  /** Runs a step; on failure saves a screenshot of the workbench as fail-<slug>.png. */
  const shot = (name: string, fn: () => Promise<void>) => async () => {
    try {
      await fn();
    } catch (e) {
      if (page) await screenshot(page, `fail-${name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}`).catch(() => undefined);
      throw e;
    }
  };

  after(async () => {
    await browser?.close().catch(() => undefined);
    await server?.stop().catch(() => undefined);
    if (root) cleanup(root);
  });

  it('trains from the Explorer context menu with epochs advancing in the status bar', { timeout: 300_000 }, shot('train', async () => {
    await screenshot(page, '01-workbench-ready');
    await expandPath(page, ['datasets']);
    // Record every text the status bar item shows (the tiny training is quick).
    await page.evaluate((id) => {
      const w = window as unknown as { __uflowStatus: string[] };
      w.__uflowStatus = [];
      const target = document.getElementById(id)!;
      new MutationObserver(() => w.__uflowStatus.push(target.textContent ?? '')).observe(target, { subtree: true, childList: true, characterData: true });
    }, 'uflow.uflow-vscode.uflow.status');
    const item = await contextMenuItem(page, 'demo_tile', 'Train U-Flow');
    // The daemon lists 'fastflow' in its models: the FastFlow entry is there too.
    await page.getByRole('menuitem', { name: 'Train FastFlow', exact: true }).waitFor();
    await settled(page.locator('.monaco-menu-container:visible').first());
    await screenshot(page, '02-explorer-context-menu');
    await chooseMenuItem(page, item);
    await statusItem(page).filter({ hasText: /U-Flow demo_tile · [1-9]\d*\/8/ }).waitFor({ timeout: 240_000 });
    await screenshot(page, '03-status-bar-training');
    await statusItem(page).filter({ hasText: /U-Flow demo_tile finished/ }).waitFor({ timeout: 240_000 });
    const seen: string[] = await page.evaluate(() => (window as unknown as { __uflowStatus: string[] }).__uflowStatus);
    const epochs = new Set(seen.map((t) => /· (\d+)\/8/.exec(t)?.[1]).filter(Boolean));
    assert.ok(epochs.size >= 2, `the status bar showed several epochs: ${[...epochs].join(', ')} (${seen.length} texts)`);
    // Its click opens the Training view with the curves.
    await statusItem(page).click();
    const wv = webview(page);
    await wv.locator('#loss-chart').waitFor();
    await wv.locator('.summary[data-state="finished"]').waitFor();
    await screenshot(page, '04-training-view');
  }));

  it('evaluates from the palette and shows metrics and a gallery with heatmaps', { timeout: 300_000 }, shot('evaluate', async () => {
    await closeAllEditors(page);
    await dismissNotifications(page);
    await runCommand(page, 'U-Flow: Evaluate');
    const wv = webview(page);
    const table = wv.locator('#metrics');
    await table.waitFor({ timeout: 240_000 });
    const rows = await table.locator('tbody tr').allInnerTexts();
    assert.ok(rows.length >= 4, `metrics rows: ${rows.join(' | ')}`);
    assert.match(rows[0]!, /demo_tile \(all\)\s+5\s+\d\.\d{3}/);
    for (const d of ['hole', 'scratch', 'stain']) assert.ok(rows.some((r) => r.includes(d)), `a row for ${d}`);
    await wv.locator('#roc-chart').waitFor();
    await screenshot(page, '05-results-metrics');
    const cards = wv.locator('#gallery .card');
    await cards.first().waitFor();
    assert.equal(await cards.count(), 5);
    // Heatmaps, NFA maps and ground truth load into the cards.
    await cards.first().scrollIntoViewIfNeeded();
    await wv.locator('#gallery .card img.img-heatmap').first().waitFor();
    await wv.locator('#gallery .card img.img-image').first().waitFor();
    await wv.locator('#gallery .card img.img-gt').first().waitFor();
    const loaded = await wv.locator('#gallery .card img.img-heatmap').first().evaluate((i: HTMLImageElement) => i.decode().then(() => i.naturalWidth));
    assert.ok(loaded > 0, 'the heatmap image decoded');
    // Sorted by score, highest first.
    const scores = await cards.evaluateAll((els) => els.map((e) => Number((e as HTMLElement).dataset.score)));
    assert.deepEqual(scores, [...scores].sort((a, b) => b - a));
    await screenshot(page, '06-results-gallery');
  }));

  it('the Results view keeps its filter when hidden and after its webview reloads', { timeout: 240_000 }, shot('results-state', async () => {
    const wv = webview(page);
    await wv.locator('#defect').click();
    await wv.locator('#defect vscode-option[value="hole"]').click();
    await wv.locator('#gallery .card[data-path*="/hole/"]').first().waitFor();
    assert.equal(await wv.locator('#gallery .card').count(), 1, 'only the hole image');
    // Hidden behind another editor, then shown again.
    await explorerRow(page, 'notes.md').first().click();
    await page.locator('.tab', { hasText: 'notes.md' }).waitFor();
    await page.locator('.tab', { hasText: 'U-Flow Results' }).click();
    await webview(page).locator('#gallery .card').first().waitFor();
    assert.equal(await webview(page).locator('#gallery .card').count(), 1, 'filter kept while hidden');
    // Reloading the webview (its document starts again; the panel is not retained) restores the
    // filter from the webview state (getState) and the data from the extension ('ready' again).
    await webview(page).locator('body').evaluate((b) => (b.dataset.before = 'reload'));
    await runCommand(page, 'Developer: Reload Webviews');
    const after = webview(page);
    await after.locator('body:not([data-before])').waitFor();
    await after.locator('#gallery .card').first().waitFor({ timeout: 120_000 });
    await after.locator('#gallery .card img.img-heatmap').first().waitFor();
    assert.equal(await after.locator('#gallery .card').count(), 1, 'filter restored after reload');
    assert.equal(await after.locator('#defect').evaluate((e) => (e as HTMLElement & { value: string }).value), 'hole');
    await screenshot(page, '06b-results-filter-after-webview-reload');
    // Back to every image for the next steps.
    await after.locator('#defect').click();
    await after.locator('#defect vscode-option[value="all"]').click();
  }));

  it('shows the heatmap overlay and the score when hovering an image in the U-Flow Image View', { timeout: 240_000 }, shot('image-view', async () => {
    await closeAllEditors(page);
    await expandPath(page, ['demo_tile', 'test', 'scratch']);
    await chooseMenuItem(page, await contextMenuItem(page, '000.png', 'Open With...'));
    await page.locator('.quick-input-widget .monaco-list-row', { hasText: 'U-Flow Image View' }).first().click();
    const wv = webview(page);
    await wv.locator('body[data-state="ready"]').waitFor({ timeout: 180_000 });
    const stage = wv.locator('#stage');
    await stage.hover({ position: { x: 60, y: 60 } });
    await wv.locator('#stage.show').waitFor();
    await wv.locator('#probe.on').waitFor();
    const probe = await wv.locator('#probe').innerText();
    assert.match(probe, /anomaly \d+\.\d{3} · −log NFA -?\d+\.\d{2}/);
    assert.match(await wv.locator('#score').innerText(), /score \d+\.\d{3}/);
    assert.equal(await wv.locator('#overlay').evaluate((e) => getComputedStyle(e).opacity !== '0'), true, 'the heatmap overlay is visible');
    if (/anomalous/.test(await wv.locator('#max-nfa').innerText())) {
      assert.ok(Number(await wv.locator('#contour').getAttribute('data-edges')) > 0, 'the NFA segmentation contour is drawn');
    }
    await screenshot(page, '07-image-view-hover');
  }));

  it('hovering an image path in a Markdown file shows the image beside its anomaly map', { timeout: 180_000 }, shot('markdown-hover', async () => {
    await closeAllEditors(page);
    await explorerRow(page, 'notes.md').first().click();
    const token = page.locator('.monaco-editor .view-line span', { hasText: 'scratch/000.png' }).first();
    await token.waitFor();
    const box = (await token.boundingBox())!;
    await page.mouse.move(box.x + box.width - 20, box.y + box.height / 2);
    const hover = page.locator('.monaco-hover:visible', { hasText: 'anomaly score' }).first();
    await hover.waitFor({ timeout: 120_000 });
    await hover.locator('img').nth(1).waitFor();
    assert.ok((await hover.locator('img').count()) >= 3, 'image, anomaly map and NFA segmentation');
    await settled(hover);
    await screenshot(page, '08-markdown-path-hover');
  }));

  it('the Runs view lists the run; an image item shows its anomaly map on hover', { timeout: 180_000 }, shot('runs-view', async () => {
    await page.keyboard.press('Escape');
    await runCommand(page, 'U-Flow: Show Runs');
    const tree = page.locator('.pane', { has: page.locator('.pane-header', { hasText: /Runs/ }) });
    await expandTreeRow(tree.locator('.monaco-list-row', { hasText: 'demo_tile · uflow' }).first());
    await expandTreeRow(tree.locator('.monaco-list-row', { hasText: 'Test images' }).first());
    const imageRow = tree.locator('.monaco-list-row[aria-level="3"]').first();
    await imageRow.waitFor();
    await imageRow.hover();
    const tip = page.locator('.monaco-hover:visible', { hasText: 'score' }).first();
    await tip.waitFor({ timeout: 60_000 });
    await tip.locator('img').first().waitFor();
    await settled(tip);
    await screenshot(page, '09-runs-view-image-tooltip');
  }));

  it('notices a killed daemon mid-training, restarts it, says the run was interrupted and keeps its checkpoint', { timeout: 300_000 }, shot('daemon-crash', async () => {
    await page.goto(workbenchUrl(server, crashWs));
    await waitForWorkbench(page);
    await expandPath(page, ['datasets']);
    await chooseMenuItem(page, await contextMenuItem(page, 'demo_tile', 'Train U-Flow'));
    await statusItem(page).filter({ hasText: /U-Flow demo_tile · ([3-9]|\d\d+)\/500/ }).waitFor({ timeout: 240_000 });
    await screenshot(page, '10-long-training');
    const pid = daemonPid(crashWs);
    assert.ok(pid, 'found the daemon process of the workspace');
    process.kill(pid, 'SIGKILL');
    await statusItem(page).filter({ hasText: /U-Flow demo_tile interrupted at epoch \d+\/500/ }).waitFor({ timeout: 60_000 });
    await settled(page.locator('.notification-toast', { hasText: 'daemon stopped while training' }).first());
    await screenshot(page, '11-daemon-killed-interrupted');
    await runCommand(page, 'U-Flow: Show Runs');
    const tree = page.locator('.pane', { has: page.locator('.pane-header', { hasText: /Runs/ }) });
    const runRow = tree.locator('.monaco-list-row', { hasText: 'interrupted' }).first();
    await runRow.waitFor({ timeout: 60_000 });
    await expandTreeRow(runRow);
    await tree.locator('.monaco-list-row', { hasText: 'checkpoint.safetensors' }).first().waitFor();
    const newPid = daemonPid(crashWs);
    assert.ok(newPid && newPid !== pid, `a new daemon runs (${newPid})`);
    await screenshot(page, '12-interrupted-run-checkpoint');
  }));
});
