#!/usr/bin/env bash
# Make this machine able to run Yiju: Debian packages (PostgreSQL, Mosquitto), a Python venv and the
# project's packages. Installs only what is missing, so a second run takes a second or two.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
say() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }

need_apt=()
python_ok() { "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null && python_ok "$(command -v "$candidate")"; then
      PYTHON=$(command -v "$candidate"); break
    fi
  done
fi
[ -n "$PYTHON" ] || need_apt+=(python3 python3-venv)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || need_apt+=(postgresql)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
# the console's browser test drives Debian's chromium with Playwright; CJK fonts so Chinese renders
command -v chromium >/dev/null || need_apt+=(chromium)
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || need_apt+=(fonts-noto-cjk)
# the indicator report's PDF: WeasyPrint renders with Pango (and HarfBuzz's subsetter for the fonts)
for lib in libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0; do
  dpkg -s "$lib" >/dev/null 2>&1 || need_apt+=("$lib")
done
# Prometheus and promtool: the rules' unit tests and the end-to-end scrape test (deploy/prometheus/)
command -v promtool >/dev/null && command -v prometheus >/dev/null || need_apt+=(prometheus)
# openssl: the broker TLS test makes its CA and certificates with it
command -v openssl >/dev/null || need_apt+=(openssl)
# emergency linkage: SIPp is the callee of the SIP voice tests and the demo; espeak-ng (Mandarin voice)
# renders the Chinese voice prompts (one WAV per alarm type) at test and demo time
command -v sipp >/dev/null || need_apt+=(sip-tester)
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
# extra packages a caller needs (e.g. the browser for the console's end-to-end test)
for extra in ${YIJU_EXTRA_APT:-}; do
  dpkg -s "$extra" >/dev/null 2>&1 || need_apt+=("$extra")
done

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    say "missing system packages: ${need_apt[*]}"
    say "install them with:  sudo apt-get install ${need_apt[*]}"
    exit 1
  fi
fi
if [ -z "$PYTHON" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null && python_ok "$(command -v "$candidate")"; then
      PYTHON=$(command -v "$candidate"); break
    fi
  done
  [ -n "$PYTHON" ] || { say "no Python >= 3.11 with venv available"; exit 1; }
fi

stamp="$venv/.yiju-installed"
want=$(cat "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ]; then
  say "creating the virtual environment in .venv"
  "$PYTHON" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Python packages (first run, or pyproject.toml changed)"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$root[dev]"
  echo "$want" > "$stamp"
fi
