#!/usr/bin/env bash
# Installs the system packages the tests need (Debian/Ubuntu), or names them when it cannot.
#   chromium    - the real browser the UI tests drive through Playwright (never a downloaded browser)
#   prometheus  - brings promtool, which lints the exporter's output
#   openjdk-17-jdk-headless - Java 17 for the local Flink cluster (java), and javac and jar for its test jobs
#   openssl     - makes the certificates of the exporter's TLS tests
#   systemd     - systemd-analyze, which checks the agent's unit file in deploy/
#   mariadb-server - mariadbd and mariadb-install-db: the change feed's MySQL-dialect tests start a real MariaDB
#   prometheus-alertmanager - the real Alertmanager the alert notification tests send to
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
{ command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; } && command -v mariadb-install-db >/dev/null 2>&1 \
  || missing+=(mariadb-server)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
{ command -v javac >/dev/null 2>&1 && command -v jar >/dev/null 2>&1; } || missing+=(openjdk-17-jdk-headless)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "pipewatch tests need these system packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
