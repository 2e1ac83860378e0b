#!/usr/bin/env bash
# The Debian packages the VS Code tests (npm run test:vscode, npm run test:e2e) and the queue tests need:
#   chromium     the browser playwright-core drives (never `npx playwright install`)
#   libkrb5-dev  code-server's `kerberos` module compiles against it
#   ripgrep      code-server's @vscode/ripgrep is satisfied offline with Debian's rg
#   g++ make python3  node-gyp for code-server's native modules (kerberos, node-pty, …)
#   redis-server the queue suite's real Redis (test/queue; skipped with the reason without it)
# A package counts as present when dpkg-query says it is installed; when all are, nothing else runs (no
# apt-get update). `npm test` (test/run.mjs, through system-deps.mjs) runs this script itself when
# it can (root, or passwordless sudo, and apt-get) and otherwise stops with the command to run.
# Usage: scripts/e2e/system-deps.sh            install the missing ones (root or sudo, apt)
#        scripts/e2e/system-deps.sh --list     print the names only
#        scripts/e2e/system-deps.sh --missing  print the names of the missing ones only
set -euo pipefail
PKGS=(chromium libkrb5-dev ripgrep g++ make python3 redis-server)
if [ "${1:-}" = "--list" ]; then printf '%s\n' "${PKGS[@]}"; exit 0; fi
missing=()
# Present means installed: a package removed but not purged is still known to `dpkg -s` (status
# "deinstall ok config-files"), with its files gone.
installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done
if [ "${1:-}" = "--missing" ]; then [ ${#missing[@]} -eq 0 ] || printf '%s\n' "${missing[@]}"; exit 0; fi
if [ ${#missing[@]} -eq 0 ]; then echo "system-deps: all present (${PKGS[*]})"; exit 0; fi
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq || true
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
