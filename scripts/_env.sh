# Shared by scripts/test and scripts/demo: find interpreters, bootstrap uv, start services.
# shellcheck shell=bash
export UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1 PIP_DISABLE_PIP_VERSION_CHECK=1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENVS="$ROOT/.venvs"

find_python() { # find_python 3.11 -> path of a CPython 3.11 interpreter
  local want="$1" candidate
  for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want"*/bin/python"$want" \
    "$(command -v "python$want" 2>/dev/null || true)"; do
    if [ -x "$candidate" ] && "$candidate" -c 'import sys' >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
  echo "error: Python $want not found (install it, e.g. with pyenv)" >&2
  return 1
}

ensure_uv() { # a private uv, so nothing is installed into the system Python
  if [ ! -x "$VENVS/bootstrap/bin/uv" ]; then
    mkdir -p "$VENVS"
    "$(find_python 3.11)" -m venv "$VENVS/bootstrap"
    "$VENVS/bootstrap/bin/pip" install --quiet "uv>=0.13"  # make_venv: --group PATH:NAME
  fi
  UV="$VENVS/bootstrap/bin/uv"
}

make_venv() { # make_venv NAME PYTHON_VERSION DJANGO_SPEC [--extra E]... [--group G]... -> $VENVS/NAME
  # The project itself is installed editable, with its extras (published) and the PEP 735
  # dependency groups of pyproject.toml (maintainers' tools, never published).
  local name="$1" py="$2" django="$3" extras="" groups=()
  shift 3
  while [ $# -gt 0 ]; do
    case "$1" in
      --extra) extras="${extras:+$extras,}$2"; shift 2 ;;
      --group) groups+=(--group "$ROOT/pyproject.toml:$2"); shift 2 ;;
      *) echo "make_venv: unknown option $1" >&2; return 2 ;;
    esac
  done
  ensure_uv
  if [ ! -x "$VENVS/$name/bin/python" ]; then
    "$UV" venv --quiet --python "$(find_python "$py")" "$VENVS/$name"
  fi
  "$UV" pip install --quiet --python "$VENVS/$name/bin/python" \
    -e "$ROOT${extras:+[$extras]}" "${groups[@]}" "$django"
}

make_tools_venv() { # build and twine (and the classifier list PyPI checks) -> $VENVS/tools
  ensure_uv
  if [ ! -x "$VENVS/tools/bin/python" ]; then
    "$UV" venv --quiet --python "$(find_python 3.11)" "$VENVS/tools"
  fi
  "$UV" pip install --quiet --python "$VENVS/tools/bin/python" build twine trove-classifiers
}

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
  echo "PostgreSQL is down; starting it" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && return 0
    sleep 1
  done
  echo "error: PostgreSQL did not come up on 127.0.0.1:5432" >&2
  return 1
}

ensure_redis() { # the shared rate budget's and the RQ queue's tests need Redis on 127.0.0.1:6379
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return 0; fi
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "Redis is not installed; installing Debian's redis-server" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq  # a fresh machine may have no package lists
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  echo "Redis is down; starting it" >&2
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "error: Redis did not come up on 127.0.0.1:6379" >&2
  return 1
}
