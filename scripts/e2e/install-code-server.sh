#!/usr/bin/env bash
# Installs code-server (bundles VS Code 1.100.3; the newest that installs on Node 20) into a cache
# outside the repository, once. Idempotent: a complete install is reused (a marker file is written
# last). Works offline from npm's cache once it has been fetched: @vscode/ripgrep is satisfied
# with Debian's /usr/bin/rg instead of a GitHub download.
# Prints the code-server entry script's path on the last line of stdout.
# Env: UFLOW_E2E_CACHE (default ~/.cache/uflow-e2e), CODE_SERVER_VERSION (default 4.100.3).
set -euo pipefail
VERSION="${CODE_SERVER_VERSION:-4.100.3}"
CACHE="${UFLOW_E2E_CACHE:-$HOME/.cache/uflow-e2e}"
DEST="$CACHE/code-server-$VERSION"
BIN="$DEST/node_modules/code-server/out/node/entry.js"
MARK="$DEST/.installed"
if [ -f "$MARK" ] && [ -f "$BIN" ]; then echo "$BIN"; exit 0; fi

for tool in rg node npm; do
  command -v "$tool" >/dev/null || { echo "install-code-server: '$tool' missing (run scripts/e2e/system-deps.sh)" >&2; exit 1; }
done
[ -f /usr/include/krb5.h ] || [ -f /usr/include/krb5/krb5.h ] || { echo "install-code-server: libkrb5-dev missing (run scripts/e2e/system-deps.sh)" >&2; exit 1; }

mkdir -p "$CACHE"
TMPDIR_CS="$(mktemp -d "$CACHE/tmp.XXXXXX")"
trap 'rm -rf "$TMPDIR_CS"' EXIT
# @vscode/ripgrep looks for this tarball in $TMPDIR before it tries GitHub.
RG_DIR="$TMPDIR_CS/vscode-ripgrep-cache-1.15.11"
mkdir -p "$RG_DIR/stage"
cp "$(command -v rg)" "$RG_DIR/stage/rg"
tar -C "$RG_DIR/stage" -czf "$RG_DIR/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" rg

rm -rf "$DEST.partial"
mkdir -p "$DEST.partial"
echo '{"name":"uflow-e2e-code-server","private":true}' > "$DEST.partial/package.json"
echo "install-code-server: installing code-server@$VERSION into $DEST (about a minute)" >&2
(
  cd "$DEST.partial"
  TMPDIR="$TMPDIR_CS" npm_config_unsafe_perm=true npm_config_yes=true npm_config_prefer_offline=true \
    npm install --no-audit --no-fund --no-save --loglevel=error "code-server@$VERSION" >&2
)
[ -f "$DEST.partial/node_modules/code-server/out/node/entry.js" ] || { echo "install-code-server: entry.js missing after install" >&2; exit 1; }
# The ripgrep binary must have landed where VS Code looks for it.
RG_OUT="$(find "$DEST.partial/node_modules" -path '*@vscode/ripgrep/bin/rg' -print -quit)"
[ -n "$RG_OUT" ] || echo "install-code-server: warning: @vscode/ripgrep binary not found (search in the workbench may fail)" >&2
rm -rf "$DEST"
mv "$DEST.partial" "$DEST"
date -u +%FT%TZ > "$MARK"
echo "$BIN"
