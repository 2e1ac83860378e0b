// Driving the VS Code 1.100 web workbench (code-server) with playwright-core: the selectors that
// work there, and waits on DOM states only.
import { mkdirSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { FrameLocator, Locator, Page } from 'playwright-core';
import { repoRoot } from '../../scripts/e2e/harness.mjs';

export const ARTIFACTS = join(repoRoot, 'test', 'e2e', 'artifacts');
export const STATUS_ID = 'uflow.uflow-vscode.uflow.status';

export function statusItem(page: Page): Locator {
  return page.locator(`[id="${STATUS_ID}"]`);
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

/** Waits for the workbench and for the extension's status bar item to show `text` (default: the daemon's backend, i.e. ready). */
export async function waitForWorkbench(page: Page, text: RegExp = /U-Flow: (?!starting|restarting|stopped)\w/, timeout = 90_000): Promise<void> {
  await page.locator('.monaco-workbench').waitFor({ timeout });
  await statusItem(page).filter({ hasText: text }).waitFor({ timeout });
}

/** Runs a command by its palette title (F1, `>title`, Enter). */
export async function runCommand(page: Page, title: string): Promise<void> {
  await page.locator('.monaco-workbench').click({ position: { x: 5, y: 5 }, force: true }).catch(() => undefined);
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible' });
  await input.fill(`>${title}`);
  // The first row must be the command itself before Enter.
  await page.locator('.quick-input-widget .monaco-list-row', { hasText: title }).first().waitFor();
  await page.keyboard.press('Enter');
  await page.locator('.quick-input-widget').waitFor({ state: 'hidden' });
}

export function explorerRow(page: Page, name: string): Locator {
  return page.locator('.explorer-folders-view .monaco-list-row').filter({ has: page.locator('.label-name', { hasText: new RegExp(`^${escapeRe(name)}$`) }) });
}

/** Expands folders of the Explorer along `names` (each must be visible once its parent opened). */
export async function expandPath(page: Page, names: string[]): Promise<void> {
  for (const n of names) {
    const row = explorerRow(page, n).first();
    await row.waitFor();
    if ((await row.getAttribute('aria-expanded')) !== 'true') {
      await row.click();
      await page.locator(`.explorer-folders-view .monaco-list-row[aria-expanded="true"]`, { has: page.locator('.label-name', { hasText: new RegExp(`^${escapeRe(n)}$`) }) }).first().waitFor();
    }
  }
}

/** Right-clicks an Explorer row and returns the context menu item named `item` (visible). */
export async function contextMenuItem(page: Page, rowName: string, item: string): Promise<Locator> {
  const row = explorerRow(page, rowName).first();
  await row.click({ button: 'right' });
  const mi = page.getByRole('menuitem', { name: item, exact: true }).first();
  await mi.waitFor();
  return mi;
}

/**
 * Activates a context menu item. The workbench ignores a mouse-up that comes right after the menu
 * opened, so the item is focused by hovering and then chosen with Enter.
 */
export async function chooseMenuItem(page: Page, mi: Locator): Promise<void> {
  await mi.hover();
  await page.locator('.monaco-menu .action-item.focused').filter({ has: mi }).waitFor();
  await page.keyboard.press('Enter');
  await page.locator('.context-view .monaco-menu').waitFor({ state: 'detached' });
}

export async function closeAllEditors(page: Page): Promise<void> {
  await runCommand(page, 'View: Close All Editors');
  await page.locator('.editor-group-container .tabs-container .tab').first().waitFor({ state: 'detached', timeout: 10_000 });
}

/** The content of the one visible webview (editor webviews: iframe.webview.ready > iframe#active-frame). */
export function webview(page: Page): FrameLocator {
  return page.locator('iframe.webview.ready:visible').first().contentFrame().frameLocator('iframe#active-frame');
}

export async function dismissNotifications(page: Page): Promise<void> {
  await runCommand(page, 'Notifications: Clear All Notifications').catch(() => undefined);
}

/** The pid of the U-Flow daemon serving `workspace` (its cwd), from /proc. */
export function daemonPid(workspace: string): number | undefined {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (!cmd.some((a) => a.endsWith('/dist/server.js')) || !cmd.includes('--node-ipc')) continue;
      if (readlinkSync(`/proc/${d}/cwd`) !== workspace) continue;
      return Number(d);
    } catch {
      /* gone */
    }
  }
  return undefined;
}

export function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Expands a tree row by its twistie (a click on the row itself runs the item's command). */
export async function expandTreeRow(row: Locator): Promise<void> {
  await row.waitFor();
  if ((await row.getAttribute('aria-expanded')) === 'true') return;
  await row.locator('.monaco-tl-twistie').click();
  await row.and(row.page().locator('[aria-expanded="true"]')).waitFor();
}

/** Waits until the element's CSS transitions and animations (e.g. a notification fading in) are done. */
export async function settled(loc: Locator): Promise<void> {
  await loc.waitFor();
  await loc.evaluate((e) => Promise.all(e.getAnimations({ subtree: true }).map((a) => a.finished)).then(() => undefined));
}
