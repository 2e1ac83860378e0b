/**
 * "U-Flow Image View" (viewType uflow.imageView): a read-only custom editor for images that shows
 * the image and, on hover, the anomaly heatmap and NFA segmentation contour with the score and
 * −log NFA under the cursor (uflow/predict with includeRaw). The image reaches the webview as a
 * data URI, so localResourceRoots holds only dist/webview.
 */
import { basename, dirname } from 'node:path';
import * as vscode from 'vscode';
import type { ImageFromWebview, ImageToWebview } from '../webview/shared.js';
import { errorMessage, isCancellation, type Daemon } from './daemon.js';
import type { Predictions } from './predictions.js';
import { fileDataUri } from './runs.js';
import { webviewHtml, webviewOptions } from './webviewHtml.js';

export const IMAGE_VIEW_TYPE = 'uflow.imageView';

class ImageDocument implements vscode.CustomDocument {
  constructor(readonly uri: vscode.Uri) {}
  dispose(): void {}
}

export class ImageViewProvider implements vscode.CustomReadonlyEditorProvider<ImageDocument> {
  /** Open views, for tests and for refreshes after a training. */
  readonly views = new Map<vscode.WebviewPanel, { uri: vscode.Uri; refresh: () => void }>();

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly daemon: Daemon,
    private readonly predictions: Predictions,
  ) {
    context.subscriptions.push(
      daemon.onJobEnded((e) => {
        if (e.kind === 'train' && e.state === 'done') for (const v of this.views.values()) v.refresh();
      }),
    );
  }

  openCustomDocument(uri: vscode.Uri): ImageDocument {
    return new ImageDocument(uri);
  }

  resolveCustomEditor(document: ImageDocument, panel: vscode.WebviewPanel): void {
    const webview = panel.webview;
    webview.options = webviewOptions(this.context.extensionUri);
    webview.html = webviewHtml(webview, this.context.extensionUri, 'image-view', basename(document.uri.fsPath));
    const post = (m: ImageToWebview) => void webview.postMessage(m);
    let cts: vscode.CancellationTokenSource | undefined;
    const path = document.uri.fsPath;

    const sendImage = async () => {
      const src = await fileDataUri(path, 32 * 1024 * 1024);
      post({ type: 'image', name: basename(path), src, note: src ? undefined : 'This browser cannot show this image format; the anomaly maps are shown instead.' });
    };
    const predict = async () => {
      cts?.cancel();
      cts = new vscode.CancellationTokenSource();
      const token = cts.token;
      post({ type: 'busy', message: 'Computing the anomaly map…' });
      try {
        const prediction = await this.predictions.predict(path, { includeRaw: true }, token);
        if (!token.isCancellationRequested) post({ type: 'prediction', prediction });
      } catch (e) {
        if (!isCancellation(e) && !token.isCancellationRequested) post({ type: 'error', message: errorMessage(e) });
      }
    };
    const refresh = () => {
      this.predictions.clear();
      void sendImage().then(predict);
    };
    this.views.set(panel, { uri: document.uri, refresh });

    const watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.file(dirname(path)), basename(path)));
    const subs: vscode.Disposable[] = [
      webview.onDidReceiveMessage((m: ImageFromWebview) => {
        if (m.type === 'ready') void sendImage().then(predict);
        else if (m.type === 'predict') void predict();
      }),
      watcher,
      watcher.onDidChange(refresh),
    ];
    panel.onDidDispose(() => {
      cts?.cancel();
      this.views.delete(panel);
      for (const s of subs) s.dispose();
    });
  }
}
