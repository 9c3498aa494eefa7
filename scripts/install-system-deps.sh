#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, when missing. Idempotent; needs root (CI runs as root).
#   openssl            independent CMS / RFC 3161 checks in tests
#   mono-mcs, unzip    NuGet's own verifier (../shared/tools/nuget-oracle) builds its driver with them
#   npm                the oracle's NuGet assemblies and NuGet.exe come from the npm registry
#   softhsm2           PKCS#11 signing tests
#   chromium           the account pages' browser test (driven by Playwright, which downloads no browser of its own)
# Feed-specific packages (PostgreSQL, Mono runtime for NuGet.exe, nginx, wrk) come from scripts/ci-feed-deps.sh.
set -euo pipefail
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v mcs >/dev/null || need+=(mono-mcs)
command -v unzip >/dev/null || need+=(unzip)
command -v npm >/dev/null || need+=(npm)
[ -e /usr/lib/softhsm/libsofthsm2.so ] || need+=(softhsm2)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "install-system-deps: need root to apt-get install ${need[*]}" >&2; exit 1; fi
  echo "install-system-deps: apt-get install ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ -f scripts/ci-feed-deps.sh ]; then bash scripts/ci-feed-deps.sh; fi
# NuGet's verifier (the differential tests' reference): install and build it once.
oracle=../shared/tools/nuget-oracle/run-oracle.sh
if [ -x "$oracle" ] || [ -f "$oracle" ]; then bash "$oracle" setup >/dev/null 2>&1 || echo "install-system-deps: nuget-oracle setup failed; oracle tests will fail" >&2; fi
# The real dotnet CLI (.NET Core 3.1 SDK, NuGet 5.4) for the `dotnet` tests (tests/feed/test_dotnet_cli.py).
dotnet_sdk=../shared/tools/dotnet-sdk/dotnet.sh
if [ -f "$dotnet_sdk" ]; then bash "$dotnet_sdk" setup >/dev/null 2>&1 || echo "install-system-deps: dotnet-sdk setup failed; dotnet tests will fail" >&2; fi
