/**
 * Path confinement for the daemon: every path a request names must lie inside one of the roots a
 * client may touch (the workspace folders it declared at `initialize`, plus the folders given to the
 * daemon with `--allow DIR`). Symlinks are resolved (realpath) before the check, so a link inside
 * the workspace that points outside it is refused too. A path that does not exist yet is resolved
 * through its nearest existing ancestor.
 */
import { existsSync, realpathSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCodes } from './protocol.js';

/** An error that the connection turns into a JSON-RPC error with this code. */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'RpcError';
  }
}

/** realpath of a path that may not exist: the nearest existing ancestor is resolved, the rest appended. */
export function realpathLoose(p: string): string {
  const abs = resolve(p);
  const tail: string[] = [];
  let cur = abs;
  for (;;) {
    if (existsSync(cur)) {
      try {
        const real = realpathSync.native(cur);
        return tail.length ? join(real, ...tail.reverse()) : real;
      } catch {
        /* unreadable: keep climbing */
      }
    }
    const parent = dirname(cur);
    if (parent === cur) return abs;
    tail.push(basename(cur));
    cur = parent;
  }
}

/** True when `p` (already real) is `root` or lies below it. */
export function isInside(root: string, p: string): boolean {
  if (p === root) return true;
  const rel = relative(root, p);
  return rel !== '' && !rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel);
}

/** Converts an LSP workspace-folder URI (file: scheme) to a file-system path; other schemes give undefined. */
export function uriToPath(uri: string): string | undefined {
  if (!uri.startsWith('file:')) return undefined;
  try {
    return fileURLToPath(uri);
  } catch {
    return undefined;
  }
}

export interface Root {
  /** As declared (for messages). */
  path: string;
  /** realpath of `path`. */
  real: string;
  kind: 'workspace' | 'allowed';
}

export function makeRoot(path: string, kind: Root['kind']): Root {
  return { path, real: realpathLoose(path), kind };
}

/**
 * The folders one client may name in its requests. Workspace folders come from `initialize`
 * (workspaceFolders, else rootUri/rootPath) and `workspace/didChangeWorkspaceFolders`; allowed
 * folders from the daemon's `--allow` flags.
 */
export class PathPolicy {
  private workspaces: Root[] = [];

  /** `extra`: folders that pass `check` but are not listed in `roots()` (no runs there): the model cache. */
  constructor(
    private readonly allowed: Root[],
    private readonly extra: Root[] = [],
  ) {}

  setWorkspaces(paths: string[]): void {
    const seen = new Set<string>();
    this.workspaces = [];
    for (const p of paths) {
      if (!isAbsolute(p)) continue;
      const r = makeRoot(p, 'workspace');
      if (seen.has(r.real)) continue;
      seen.add(r.real);
      this.workspaces.push(r);
    }
  }

  addWorkspace(path: string): void {
    this.setWorkspaces([...this.workspaces.map((w) => w.path), path]);
  }

  removeWorkspace(path: string): void {
    const real = realpathLoose(path);
    this.workspaces = this.workspaces.filter((w) => w.real !== real);
  }

  /** Workspace folders first, then allowed folders. */
  roots(): Root[] {
    return [...this.workspaces, ...this.allowed];
  }

  describeRoots(): string {
    const r = this.roots();
    const listed = r.length ? r.map((x) => x.path).join(', ') : '(none: the client declared no workspace folders and the daemon has no --allow folder)';
    return this.extra.length ? `${listed} (and the model cache ${this.extra.map((x) => x.path).join(', ')})` : listed;
  }

  /** The root holding the real path `real`, innermost first when roots nest. */
  rootOf(real: string): Root | undefined {
    let best: Root | undefined;
    for (const r of [...this.roots(), ...this.extra]) if (isInside(r.real, real) && (!best || r.real.length > best.real.length)) best = r;
    return best;
  }

  /**
   * Checks one path parameter: its real path must lie inside a root. `what` names it in messages, e.g.
   * `uflow/train: params.datasetPath`.
   */
  check(value: string, what: string): { real: string; path: string; root: Root } {
    const real = realpathLoose(value);
    const root = this.rootOf(real);
    if (!root) {
      const via = real !== resolve(value) ? ` (it resolves to ${real})` : '';
      throw new RpcError(
        ErrorCodes.PathOutsideWorkspace,
        `${what} '${value}'${via} is outside the folders this daemon may use: ${this.describeRoots()}. ` +
          `Open its folder in the workspace, or start the daemon with --allow <dir>.`,
      );
    }
    // Handlers pass `path` (as the client spells it, normalised) on, so that what they answer
    // speaks of the client's paths; `real` is what was checked.
    return { real, path: resolve(value), root };
  }
}

/** `<root>/.uflow`: where runs (runs/) and caches live for a workspace. */
export function trainDirOf(root: string): string {
  return join(root, '.uflow');
}

/** A run id is one path segment: letters, digits, '-', '_', '.' (not '.' or '..'). */
export function isSafeRunId(id: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/.test(id) && id !== '.' && id !== '..';
}
