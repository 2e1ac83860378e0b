// Simulated disk full, loaded into a CLI child with `node --import`: every write to a file whose
// path matches FAULT_ENOSPC_MATCH (a regular expression) fails with ENOSPC, as a full disk does
// (the open succeeds, the write does not). Works on the ES-module bindings too (syncBuiltinESMExports).
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const match = new RegExp(process.env.FAULT_ENOSPC_MATCH ?? '$^');
const doomed = new Set();
const origOpen = fs.openSync;
const origWrite = fs.writeSync;
const origWriteFile = fs.writeFileSync;
const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });

fs.openSync = function (path, ...rest) {
  const fd = origOpen.call(this, path, ...rest);
  if (typeof path === 'string' && match.test(path)) doomed.add(fd);
  else doomed.delete(fd); // a reused descriptor number
  return fd;
};
fs.writeSync = function (fd, ...rest) {
  if (doomed.has(fd)) throw enospc();
  return origWrite.call(this, fd, ...rest);
};
fs.writeFileSync = function (path, ...rest) {
  if (typeof path === 'string' && match.test(path)) throw Object.assign(enospc(), { path });
  return origWriteFile.call(this, path, ...rest);
};
syncBuiltinESMExports();
