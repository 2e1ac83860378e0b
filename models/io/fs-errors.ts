/**
 * File-system errors as sentences: an `errno` error from node:fs (EACCES, ENOENT, ENOTDIR, ENOSPC,
 * …) becomes "<path>: <what happened>: <the fix>", so nothing a person can cause surfaces as raw
 * `EACCES: permission denied, open '…'` text or as an "internal error".
 */

export interface ErrnoLike {
  code: string;
  path?: string;
  dest?: string;
  syscall?: string;
  message?: string;
}

/** Whether `e` is a Node system error with an errno code (ENOENT, EACCES, …). */
export function isErrnoError(e: unknown): e is ErrnoLike & Error {
  const c = (e as { code?: unknown })?.code;
  return e instanceof Error && typeof c === 'string' && /^E[A-Z0-9]+$/.test(c);
}

const WRITES = /^(open|write|mkdir|rename|copyfile|unlink|rmdir|rm|symlink|link|fsync|ftruncate|utime|chmod|close)$/;

/** The sentence for a file-system error (`path` overrides the error's own path). */
export function fsErrorSentence(e: ErrnoLike, path?: string): string {
  const p = path ?? e.path ?? e.dest ?? '(unknown path)';
  const writing = e.syscall !== undefined && WRITES.test(e.syscall) && e.syscall !== 'open' ? true : /write|mkdir|rename/.test(e.syscall ?? '');
  switch (e.code) {
    case 'EACCES':
    case 'EPERM':
      return `${p}: permission denied: make it ${writing ? 'writable' : 'readable'} for this user (chmod / chown), or choose another location`;
    case 'ENOENT':
      return `${p}: no such file or folder: check the path (it may have been moved or deleted)`;
    case 'ENOTDIR':
      return `${p}: a part of this path is a file, not a folder: point at a folder (or remove the file that is in the way)`;
    case 'EISDIR':
      return `${p}: is a folder where a file was expected: give the path of a file`;
    case 'ENOSPC':
      return `${p}: no space left on the device (disk full): free some space, or use a folder on another disk (-train_dir)`;
    case 'EDQUOT':
      return `${p}: disk quota exceeded: free some space or use a folder on another disk`;
    case 'EROFS':
      return `${p}: the file system is read-only: use a writable folder (e.g. -train_dir <dir>)`;
    case 'ELOOP':
      return `${p}: too many symbolic links (a link that points to itself?): fix or remove the link`;
    case 'ENAMETOOLONG':
      return `${p}: the path is too long: use a shorter path`;
    case 'EMFILE':
    case 'ENFILE':
      return `${p}: too many open files: close other programs or raise the limit (ulimit -n)`;
    case 'EEXIST':
      return `${p}: already exists: remove it or choose another name`;
    case 'ENOTEMPTY':
      return `${p}: the folder is not empty: empty or remove it first`;
    case 'EBUSY':
      return `${p}: busy (in use by another program): close that program and retry`;
    case 'EIO':
      return `${p}: input/output error from the device: check the disk`;
    case 'EXDEV':
      return `${p}: cannot move across file systems: use a folder on the same disk`;
    default:
      return `${p}: ${e.code}${e.syscall ? ` during ${e.syscall}` : ''}: check the path and its permissions`;
  }
}

/** The error's message for a person: a sentence for a file-system error, else its own message. */
export function describeError(e: unknown): string {
  if (isErrnoError(e)) return fsErrorSentence(e);
  return (e as Error)?.message ?? String(e);
}
