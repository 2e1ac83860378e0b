import * as assert from 'node:assert/strict';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { api, demoCategory, until, workspaceRoot } from './util.js';

describe('anomaly maps on hover', function () {
  this.timeout(300_000);

  it('the hover provider answers an image path in a Markdown file with the map and the score', async () => {
    await api();
    const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(join(workspaceRoot(), 'notes.md')));
    await vscode.window.showTextDocument(doc);
    const line = doc.getText().split('\n').findIndex((l) => l.includes('scratch/000.png'));
    assert.ok(line >= 0);
    const col = doc.lineAt(line).text.indexOf('scratch/000.png') + 3;
    const hovers = await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', doc.uri, new vscode.Position(line, col));
    const text = hovers.flatMap((h) => h.contents.map((c) => (typeof c === 'string' ? c : c.value))).join('\n');
    assert.match(text, /U-Flow\*\* anomaly score \*\*\d/, 'the score');
    assert.match(text, /max −log NFA/);
    const images = text.match(/<img src="data:image\/png;base64,/g) ?? [];
    assert.ok(images.length >= 3, `the image, its anomaly map and its NFA segmentation (found ${images.length})`);
  });

  it('a quoted relative path resolves too, and a non-image word gets no U-Flow hover', async () => {
    await api();
    const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(join(workspaceRoot(), 'notes.md')));
    const line = doc.getText().split('\n').findIndex((l) => l.includes('good/000.png'));
    const col = doc.lineAt(line).text.indexOf('good/000.png') + 2;
    const hovers = await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', doc.uri, new vscode.Position(line, col));
    assert.match(hovers.flatMap((h) => h.contents.map((c) => (typeof c === 'string' ? c : c.value))).join('\n'), /anomaly score/);
    const none = await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', doc.uri, new vscode.Position(0, 3));
    assert.ok(!none.some((h) => h.contents.some((c) => (typeof c === 'string' ? c : c.value).includes('U-Flow'))));
  });

  it('opens a test image in the U-Flow Image View', async () => {
    const a = await api();
    const uri = vscode.Uri.file(join(demoCategory(), 'test', 'hole', '000.png'));
    await vscode.commands.executeCommand('vscode.openWith', uri, 'uflow.imageView');
    await until(() => [...a.imageViews.views.values()].some((v) => v.uri.fsPath === uri.fsPath), [vscode.window.tabGroups.onDidChangeTabs as vscode.Event<unknown>], 'the image view');
    const tab = vscode.window.tabGroups.activeTabGroup.activeTab;
    assert.ok(tab?.input instanceof vscode.TabInputCustom);
    assert.equal((tab.input as vscode.TabInputCustom).viewType, 'uflow.imageView');
  });

  it('image items of the Runs view show the anomaly map in their tooltip', async () => {
    const a = await api();
    // The evaluated run (suite 10's): later suites' runs are trained, not evaluated, and list no images.
    const roots = await a.runsTree.getChildren();
    const finished = roots.filter((n) => n.kind === 'run' && n.run.state === 'finished');
    assert.ok(finished.length > 0);
    let imagesNode;
    for (const run of finished) {
      imagesNode = (await a.runsTree.getChildren(run)).find((c) => c.kind === 'images');
      if (imagesNode) break;
    }
    assert.ok(imagesNode, 'the evaluated run lists its test images');
    const [first] = await a.runsTree.getChildren(imagesNode);
    assert.ok(first && first.kind === 'image');
    const item = a.runsTree.getTreeItem(first);
    const cts = new vscode.CancellationTokenSource();
    const resolved = await a.runsTree.resolveTreeItem(item, first, cts.token);
    const tip = resolved.tooltip as vscode.MarkdownString;
    assert.ok(tip instanceof vscode.MarkdownString);
    assert.match(tip.value, /<img src="data:image\/png;base64,/);
    assert.match(tip.value, /score/);
  });
});
