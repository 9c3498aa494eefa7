#!/usr/bin/env bash
# Install what the feed tests and bench/feed.py need on a fresh Debian 12 machine. Idempotent.
#
#   - PostgreSQL server binaries (tests start throw-away clusters with initdb/pg_ctl on a free port)
#   - Mono with the assemblies NuGet.exe 5.8 loads (push, install, search, list, delete)
#   - nginx and wrk (bench/feed.py compares the feed with nginx serving the same files)
#   - NuGet.exe 5.8 from the npm package nuget-exe@5.8.0, into $NUSEAL_CACHE/nuget-exe
#
# Prints the path of nuget.exe on its last line. Tests find it at the same place (or in $NUSEAL_NUGET_EXE).
set -euo pipefail

CACHE="${NUSEAL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nuseal}"
NUGET_DIR="$CACHE/nuget-exe"
NUGET_EXE="$NUGET_DIR/node_modules/nuget-exe/nuget-5.8.0.exe"

DEBS=(
  postgresql
  nginx
  wrk
  mono-runtime
  # assemblies NuGet.exe 5.8 needs at start-up and for HTTP/zip work (found by running it on Debian 12)
  libmono-system-componentmodel-composition4.0-cil
  libmono-system-net-http4.0-cil
  libmono-system-net-http-webrequest4.0-cil
  libmono-system-io-compression4.0-cil
  libmono-system-io-compression-filesystem4.0-cil
  libmono-system-xml-linq4.0-cil
  libmono-system-runtime-serialization4.0-cil
  libmono-system-data4.0-cil
  libmono-system-data-services-client4.0-cil
  libmono-system-security4.0-cil
  libmono-system-servicemodel4.0a-cil
  libmono-system-runtime4.0-cil
  libmono-windowsbase4.0-cil
  libmono-microsoft-build-framework4.0-cil
  libmono-microsoft-build-utilities-v4.0-4.0-cil
  libmono-microsoft-build-tasks-v4.0-4.0-cil
  libmono-microsoft-build-engine4.0-cil
  libmono-microsoft-build4.0-cil
  ca-certificates-mono
)

missing=()
command -v npm >/dev/null || missing+=(npm)
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # policy-rc.d-style refusals to start services are expected in containers; tests start their own servers
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# initdb/pg_ctl live outside PATH on Debian; tests look in /usr/lib/postgresql/*/bin as well.
if [ ! -f "$NUGET_EXE" ]; then
  mkdir -p "$NUGET_DIR"
  (cd "$NUGET_DIR" && npm install --no-audit --no-fund --silent nuget-exe@5.8.0 >/dev/null)
fi
test -f "$NUGET_EXE"
echo "$NUGET_EXE"
