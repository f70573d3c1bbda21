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
}
