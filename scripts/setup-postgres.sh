#!/usr/bin/env bash
# Installs PostgreSQL's server binaries (initdb, postgres) from Debian when they are missing.
# The tests start their own server from them (a data directory in a temporary directory, a
# free port on 127.0.0.1) and stop it; nothing here starts or configures a system service.
set -euo pipefail
if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# The server package without its cluster: the tests make their own.
$sudo apt-get install -y -qq --no-install-recommends postgresql-common >/dev/null
$sudo sed -i 's/^#\?\s*create_main_cluster.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf
$sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
ls /usr/lib/postgresql/*/bin/initdb
