#!/usr/bin/env bash
# What the dashboard's browser test needs: Debian's Chromium (installed with apt-get when
# missing and this user may) and playwright-core from the npm registry (pinned by
# tests/browser/package-lock.json; it drives the system Chromium and downloads no browser).
# Never fails the build: where something cannot be installed it says so, and the test then
# reports itself SKIPPED loudly.
set -uo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "browser-deps: installing Debian's chromium"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
            || echo "browser-deps: WARNING: could not install chromium; the browser test will be SKIPPED"
    else
        echo "browser-deps: WARNING: chromium missing and cannot be installed here (needs root and apt-get);" \
             "the browser test will be SKIPPED"
    fi
fi

if command -v npm >/dev/null 2>&1; then
    if [ ! -d tests/browser/node_modules/playwright-core ]; then
        npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error \
            || echo "browser-deps: WARNING: npm ci failed; the browser test will be SKIPPED"
    fi
else
    echo "browser-deps: WARNING: node/npm missing; the browser test will be SKIPPED"
fi
