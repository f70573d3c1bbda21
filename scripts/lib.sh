#!/usr/bin/env bash
# Shared bash helpers for snapferry scripts. Source it:  . "$(dirname "$0")/lib.sh"

# snapferry_root: print the repository root (the directory holding this scripts/ dir).
snapferry_root() {
  (cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
}

# ensure_venv: create $ROOT/.venv (python3 -m venv) if missing and install
# emulator/requirements.txt + emulator/requirements-dev.txt, but only when
# they changed since the last install (hash stamp in .venv). Quiet, idempotent,
# and fast when nothing changed. Prints nothing on success (errors on stderr).
# It does not repair packages changed by hand inside an existing .venv (the
# emulator refuses to start on another moto than the pinned one): remove .venv
# and run it again.
ensure_venv() {
  local root venv stamp want have
  root="$(snapferry_root)"
  venv="$root/.venv"
  stamp="$venv/.snapferry-requirements.sha256"
  if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv" >&2 || { echo "ensure_venv: python3 -m venv failed" >&2; return 1; }
  fi
  want="$(cat "$root/emulator/requirements.txt" "$root/emulator/requirements-dev.txt" | sha256sum | cut -d' ' -f1)"
  have="$(cat "$stamp" 2>/dev/null || true)"
  if [[ "$want" != "$have" ]]; then
    if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$root/emulator/requirements.txt" -r "$root/emulator/requirements-dev.txt" >&2; then
      echo "ensure_venv: pip install failed" >&2
      return 1
    fi
    echo "$want" > "$stamp"
  fi
  ensure_mariadb
}

# ensure_mariadb: make sure the MariaDB server binaries the emulator runs behind
# mysql / mariadb / aurora-mysql resources (emulator/snapferry_emulator/mydata.py)
# are installed: Debian's mariadb-server-core (/usr/sbin/mariadbd and
# mariadb-install-db, no service registered).
ensure_mariadb() {
  ensure_package /usr/sbin/mariadbd mariadb-server-core  # the path mydata.py runs
}

# ensure_chromium: Debian's Chromium, which the report's end-to-end test renders the
# report in, headless (tests/tests/e2e/report.rs).
ensure_chromium() {
  ensure_package /usr/bin/chromium chromium
}

# ensure_package BINARY PACKAGE: make sure BINARY is there, from Debian's PACKAGE. As root
# it installs the package (apt-get update and a second try only when the first install
# fails, e.g. for want of package lists); as another user it fails saying what to install.
# Silent and instant when present.
ensure_package() {
  local binary=$1 package=$2
  if [[ -x $binary ]]; then
    return 0
  fi
  if [[ "$(id -u)" != 0 ]]; then
    echo "ensure_package: $binary is missing; install it as root: apt-get install -y --no-install-recommends $package" >&2
    return 1
  fi
  local install=(apt-get install -y -q --no-install-recommends "$package")
  if ! DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1 || true
    if ! DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null; then
      echo "ensure_package: apt-get install $package failed" >&2
      return 1
    fi
  fi
}
