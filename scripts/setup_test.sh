#!/usr/bin/env bash
# What only the test suite needs beyond .venv (scripts/setup.sh): Debian's Chromium and its driver for the browser
# test (tests/serve/test_browser.py drives it with Selenium). Installed once, as root (CI); the main job (setup.sh,
# `clapkit demo`) never installs system packages.
set -euo pipefail
if { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; } && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
fi
