#!/usr/bin/env bash
# Installs what the portal's browser tests drive: Debian's headless Chromium and its
# WebDriver (chromedriver), and fonts with Japanese glyphs so the screenshots can be read.
# Idempotent; run as root (or with sudo) on a Debian machine.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-noto-cjk >/dev/null
chromium --version
chromedriver --version
