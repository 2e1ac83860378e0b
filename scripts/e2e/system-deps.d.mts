export const SCRIPT: string;
export interface SystemDepsFacts {
  skip: string | undefined;
  missing: string[];
  root: boolean;
  sudo: boolean;
  aptGet: boolean;
  rerun?: string;
}
export interface SystemDepsDecision {
  action: 'skip' | 'none' | 'install' | 'stop';
  command?: string[];
  message: string;
}
export function decideSystemDeps(facts: SystemDepsFacts): SystemDepsDecision;
export function missingSystemPackages(): string[];
export function ensureSystemDeps(opts?: { skip?: string | undefined; rerun?: string }): { ok: true } | { ok: false; message: string };
