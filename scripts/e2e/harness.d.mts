import type { ChildProcess } from 'node:child_process';
import type { Browser } from 'playwright-core';

export const repoRoot: string;
export const CHROMIUM: string;
export function skipReason(): string | undefined;
export function missingPrerequisites(): string[];
export function ensureCodeServer(): string;
export function freePort(): Promise<number>;
export function scratchDir(prefix: string): string;
export const defaultUserSettings: Record<string, unknown>;
export interface CodeServerDirs {
  root: string;
  userData: string;
  extensions: string;
}
export function prepareDirs(opts?: { root?: string; userData?: string; extensions?: string; settings?: Record<string, unknown> }): CodeServerDirs;
export function installExtension(entry: string, dirs: CodeServerDirs, vsix: string): string;
export interface CodeServer {
  url: string;
  port: number;
  dirs: CodeServerDirs;
  proc: ChildProcess;
  log(): string;
  stop(): Promise<void>;
}
export function startCodeServer(opts?: { entry?: string; dirs?: CodeServerDirs; env?: Record<string, string>; onOutput?: (s: string) => void }): Promise<CodeServer>;
export function remoteUri(port: number, path: string): string;
export function workbenchUrl(server: CodeServer, folder: string, payload?: Array<[string, string]>): string;
export function launchChromium(opts?: { profileRoot?: string }): Promise<Browser>;
export function cleanup(dir: string): void;
