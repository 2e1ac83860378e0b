/**
 * Ask before an expensive training: the daemon's estimate (uflow/estimate) against the setting
 * `uflow.confirmTrainingAboveMinutes`; above it, a quick pick offers the training as asked, the
 * faster choice the daemon computed (fewer epochs or a smaller input size), or Cancel.
 *
 * Tests cannot click a quick pick: `onDidShowTrainingChoice` hands them the shown choice, with the
 * labels and a `pick` that resolves it as a click would (the seam the extension-host test uses).
 */
import * as vscode from 'vscode';
import type { EstimateResult, TrainParams } from '../server/protocol.js';

export const CONFIRM_SETTING = 'confirmTrainingAboveMinutes';

/** The setting's minutes (default 20); 0 or less: never estimate nor ask. */
export function confirmLimitMinutes(): number {
  const v = vscode.workspace.getConfiguration('uflow').get<number>(CONFIRM_SETTING, 20);
  return typeof v === 'number' && Number.isFinite(v) ? v : 20;
}

export function minutesText(seconds: number): string {
  if (seconds < 90) return `${Math.max(1, Math.round(seconds))} s`;
  const m = Math.round(seconds / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  return m - h * 60 ? `${h} h ${m - h * 60} min` : `${h} h`;
}

export type TrainingChoice = { action: 'train'; config?: TrainParams['config'] } | { action: 'cancel' };

export interface ShownTrainingChoice {
  estimate: EstimateResult;
  labels: string[];
  /** Resolves the quick pick with the item of this label (as a user's pick would). */
  pick(label: string): void;
}

const shown = new vscode.EventEmitter<ShownTrainingChoice>();
export const onDidShowTrainingChoice = shown.event;

interface Item extends vscode.QuickPickItem {
  choice: TrainingChoice;
}

/** Merges the faster choice's overrides into the request's config. */
export function withOverrides(config: TrainParams['config'], extra: NonNullable<EstimateResult['alternative']>['config']): TrainParams['config'] {
  return { model: { ...(config?.model ?? {}), ...(extra.model ?? {}) }, trainer: { ...(config?.trainer ?? {}), ...(extra.trainer ?? {}) } };
}

/**
 * Above the limit: the quick pick (Train · the faster choice · Cancel); below it: train. Dismissing
 * the quick pick (Escape) cancels.
 */
export async function confirmTraining(estimate: EstimateResult, limitMinutes: number, config: TrainParams['config'], token?: vscode.CancellationToken): Promise<TrainingChoice> {
  if (limitMinutes <= 0 || estimate.totalSeconds <= limitMinutes * 60) return { action: 'train', config };
  const about = (s: number) => `${estimate.atMost ? 'at most ' : ''}about ${minutesText(s)}`;
  const items: Item[] = [{ label: `Train (${about(estimate.totalSeconds)})`, detail: estimate.line, choice: { action: 'train', config } }];
  const alt = estimate.alternative;
  if (alt) items.push({ label: `Train faster: ${alt.label} (${about(alt.totalSeconds)})`, choice: { action: 'train', config: withOverrides(config, alt.config) } });
  items.push({ label: 'Cancel', choice: { action: 'cancel' } });
  const qp = vscode.window.createQuickPick<Item>();
  qp.title = `U-Flow: this training takes ${about(estimate.totalSeconds)} (above ${limitMinutes} min, uflow.${CONFIRM_SETTING})`;
  qp.placeholder = estimate.line;
  qp.items = items;
  qp.ignoreFocusOut = true;
  return new Promise<TrainingChoice>((resolve) => {
    let done = false;
    const finish = (c: TrainingChoice) => {
      if (done) return;
      done = true;
      sub.dispose();
      qp.dispose();
      resolve(c);
    };
    const sub = vscode.Disposable.from(
      qp.onDidAccept(() => finish(qp.selectedItems[0]?.choice ?? qp.activeItems[0]?.choice ?? { action: 'cancel' })),
      qp.onDidHide(() => finish({ action: 'cancel' })),
      ...(token ? [token.onCancellationRequested(() => finish({ action: 'cancel' }))] : []),
    );
    qp.show();
    shown.fire({
      estimate,
      labels: items.map((i) => i.label),
      pick: (label) => {
        const item = items.find((i) => i.label === label);
        if (!item) throw new Error(`no choice '${label}' among ${items.map((i) => i.label).join(' | ')}`);
        finish(item.choice);
      },
    });
  });
}
