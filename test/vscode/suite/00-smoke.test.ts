import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';

describe('smoke', () => {
  it('runs inside a VS Code extension host', () => {
    assert.ok(vscode.version.length > 0);
    assert.ok(vscode.extensions.getExtension('uflow.uflow-vscode'), 'the extension under test is loaded');
  });
});
