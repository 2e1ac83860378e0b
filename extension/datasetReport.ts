/**
 * Dataset reports from the daemon (`uflow/datasetReport`, sent at the start of every training and
 * evaluation): each problem becomes a diagnostic on the offending file in the Problems panel
 * (error: the job was refused; warning: it went on, the file skipped or excluded as said), and a
 * report with problems raises a warning notification whose "Show details" prints the whole report
 * in the U-Flow Output channel.
 */
import * as vscode from 'vscode';

/** The parts of server/dataset-report.ts's DatasetReportNotification the extension reads. */
export interface DatasetReportNote {
  runId: string;
  jobId?: string;
  text: string;
  report: {
    purpose: 'train' | 'evaluate';
    categoryDir: string;
    refused: boolean;
    issues: Array<{ kind: string; action: 'refuse' | 'warn'; path: string; image?: string; message: string }>;
  };
}

export const DATASET_REPORT_NOTIFICATION = 'uflow/datasetReport';

export class DatasetReports implements vscode.Disposable {
  readonly diagnostics = vscode.languages.createDiagnosticCollection('uflow-dataset');
  /** Files with diagnostics per (category folder, purpose): a new report replaces its own. */
  private readonly byReport = new Map<string, vscode.Uri[]>();
  /** The last report received (tests). */
  last: DatasetReportNote | undefined;

  constructor(private readonly output: vscode.OutputChannel) {}

  show(note: DatasetReportNote): void {
    this.last = note;
    const r = note.report;
    const key = `${r.categoryDir}|${r.purpose}`;
    for (const uri of this.byReport.get(key) ?? []) this.diagnostics.delete(uri);
    const perFile = new Map<string, vscode.Diagnostic[]>();
    for (const i of r.issues) {
      const d = new vscode.Diagnostic(new vscode.Range(0, 0, 0, 0), i.message, i.action === 'refuse' ? vscode.DiagnosticSeverity.Error : vscode.DiagnosticSeverity.Warning);
      d.source = `U-Flow dataset (${r.purpose})`;
      d.code = i.kind;
      perFile.set(i.path, [...(perFile.get(i.path) ?? []), d]);
    }
    const uris: vscode.Uri[] = [];
    for (const [path, list] of perFile) {
      const uri = vscode.Uri.file(path);
      uris.push(uri);
      this.diagnostics.set(uri, list);
    }
    this.byReport.set(key, uris);
    this.output.appendLine(note.text);
    if (!r.issues.length) return;
    const refused = r.issues.filter((i) => i.action === 'refuse').length;
    const what = r.purpose === 'train' ? 'training' : 'evaluation';
    const msg = refused
      ? `U-Flow refused the ${what} of ${r.categoryDir}: ${refused} problem${refused > 1 ? 's' : ''} in the dataset (see the Problems panel).`
      : `U-Flow ${what} of ${r.categoryDir}: ${r.issues.length} dataset warning${r.issues.length > 1 ? 's' : ''} (files skipped or excluded; see the Problems panel).`;
    const maskRefusal = refused > 0 && r.purpose === 'evaluate' && r.issues.every((i) => i.action !== 'refuse' || i.kind.startsWith('mask-'));
    const actions = maskRefusal ? ['Show details', 'Evaluate without them'] : ['Show details'];
    void vscode.window.showWarningMessage(msg, ...actions).then((a) => {
      if (a === 'Show details') this.output.show(true);
      if (a === 'Evaluate without them') void vscode.commands.executeCommand('uflow.evaluate', note.runId, { allowMaskProblems: true });
    });
  }

  dispose(): void {
    this.diagnostics.dispose();
  }
}
