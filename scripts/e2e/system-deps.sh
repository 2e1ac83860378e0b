#!/usr/bin/env bash
# The Debian packages the VS Code tests (npm run test:vscode, npm run test:e2e) need:
#   chromium     the browser playwright-core drives (never `npx playwright install`)
#   libkrb5-dev  code-server's `kerberos` module compiles against it
#   ripgrep      code-server's @vscode/ripgrep is satisfied offline with Debian's rg
#   g++ make python3  node-gyp for code-server's native modules (kerberos, node-pty, …)
# Usage: scripts/e2e/system-deps.sh            install them (root, apt)
#        scripts/e2e/system-deps.sh --list     print the names only
set -euo pipefail
PKGS=(chromium libkrb5-dev ripgrep g++ make python3)
if [ "${1:-}" = "--list" ]; then printf '%s\n' "${PKGS[@]}"; exit 0; fi
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then echo "system-deps: all present (${PKGS[*]})"; exit 0; fi
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq || true
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
