#!/usr/bin/env bash
# Installs the real servers that the tests in testcontainers/ start:
# etcd, PostgreSQL 15, protoc, moto, gcp-storage-emulator, s3s-fs and Azurite,
# plus ssh-keygen and openssl, which the crypto tests use as cross-checks.
#
#   scripts/install-test-services.sh                # everything
#   scripts/install-test-services.sh etcd moto      # a subset
#   scripts/install-test-services.sh --list         # the names it knows
#
# Everything that can live in the project goes into
# ${TELEPORT_TEST_SERVICES_DIR:-<repo>/.test-services}:
#   venv/                  moto server and gcp-storage-emulator (pip)
#   bin/s3s-fs             cargo install s3s-fs
#   node/node_modules/     Azurite (npm)
# etcd, PostgreSQL, protoc, ssh-keygen and openssl come from Debian (apt) and
# need root.
#
# Idempotent: a step whose server is already there at the pinned version is
# skipped, so a second run takes seconds. Exits non-zero, naming the failed
# steps, if anything could not be installed. docs/testing.md explains how the
# tests find these servers.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${TELEPORT_TEST_SERVICES_DIR:-$REPO/.test-services}"
# A relative path is relative to the repository, as the tests read it.
case "$DIR" in /*) ;; *) DIR="$REPO/$DIR" ;; esac

# Pinned versions: the ones measured in shared/reference/deps-and-emulators.md.
# Override one with the environment variable of the same name.
MOTO_VERSION="${MOTO_VERSION:-5.2.5}"
GCS_EMULATOR_VERSION="${GCS_EMULATOR_VERSION:-2026.7.19}"
# s3s-fs 0.15+ needs rustc 1.96; 0.14.1 builds on 1.95.
S3S_FS_VERSION="${S3S_FS_VERSION:-0.14.1}"
AZURITE_VERSION="${AZURITE_VERSION:-3.37.0}"

ALL=(protoc crypto-tools etcd postgres moto gcs s3s-fs azurite)

usage() {
    cat <<EOF
usage: $0 [--list] [SERVER...]
servers: ${ALL[*]} (default: all)
aliases: dynamodb -> moto, s3 -> s3s-fs, azure -> azurite, postgresql -> postgres
installs into: $DIR (set TELEPORT_TEST_SERVICES_DIR to change)
EOF
}

SUMMARY=()
FAILED=()
APT_UPDATED=0

say() { printf '==> %s\n' "$*" >&2; }
STEP_START=$SECONDS
ok() { SUMMARY+=("$(printf '%-9s %s [%ss]' "$1" "$2" "$((SECONDS - STEP_START))")"); }
fail() {
    SUMMARY+=("$(printf '%-9s FAILED: %s [%ss]' "$1" "$2" "$((SECONDS - STEP_START))")")
    FAILED+=("$1")
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# apt_ensure NAME PKG... : installs the Debian packages unless dpkg already
# has every one of them.
apt_ensure() {
    local name="$1"
    shift
    local missing=()
    local p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
            missing+=("$p")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    if ! is_root; then
        say "$name: needs root to install Debian packages: ${missing[*]}"
        say "$name: run: sudo apt-get install -y --no-install-recommends ${missing[*]}"
        return 1
    fi
    say "$name: apt-get install ${missing[*]}"
    # Try the cached package lists first; update them only if that fails.
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; then
        if [ "$APT_UPDATED" -eq 0 ]; then
            APT_UPDATED=1
            apt-get update -q >&2 || return 1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 || return 1
    fi
    APT_INSTALLED=1
}

dpkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null; }

install_protoc() {
    APT_INSTALLED=0
    if apt_ensure protoc protobuf-compiler libprotobuf-dev; then
        local how="already present"
        [ "$APT_INSTALLED" -eq 1 ] && how="installed"
        ok protoc "$how ($(protoc --version 2>/dev/null || echo '?'), apt protobuf-compiler $(dpkg_version protobuf-compiler))"
    else
        fail protoc "apt protobuf-compiler libprotobuf-dev"
    fi
}

# ssh-keygen reads the SSH certificates src/crypto signs; openssl verifies its
# X.509 chains.
install_crypto_tools() {
    APT_INSTALLED=0
    if apt_ensure crypto-tools openssh-client openssl; then
        local how="already present"
        [ "$APT_INSTALLED" -eq 1 ] && how="installed"
        ok crypto-tools "$how (openssh-client $(dpkg_version openssh-client), openssl $(dpkg_version openssl))"
    else
        fail crypto-tools "apt openssh-client openssl"
    fi
}

install_etcd() {
    APT_INSTALLED=0
    if apt_ensure etcd etcd-server etcd-client; then
        local how="already present"
        [ "$APT_INSTALLED" -eq 1 ] && how="installed"
        ok etcd "$how (etcd $(dpkg_version etcd-server), $(command -v etcd))"
    else
        fail etcd "apt etcd-server etcd-client"
    fi
}

install_postgres() {
    APT_INSTALLED=0
    if apt_ensure postgres postgresql; then
        local how="already present"
        [ "$APT_INSTALLED" -eq 1 ] && how="installed"
        local initdb
        initdb="$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n1 || true)"
        if [ -z "$initdb" ]; then
            fail postgres "postgresql is installed but no /usr/lib/postgresql/*/bin/initdb was found"
            return
        fi
        if is_root && ! id postgres >/dev/null 2>&1; then
            fail postgres "running as root, but there is no 'postgres' user to run initdb as"
            return
        fi
        # The postgres store's change feed decodes the WAL with wal2json (as
        # upstream's pgbk does); the plugin must match the server's major version.
        local major
        major="$(basename "$(dirname "$(dirname "$initdb")")")"
        if ! apt_ensure postgres "postgresql-$major-wal2json"; then
            fail postgres "apt postgresql-$major-wal2json"
            return
        fi
        [ "$APT_INSTALLED" -eq 1 ] && how="installed"
        ok postgres "$how ($("$initdb" --version), wal2json $(dpkg_version "postgresql-$major-wal2json"), $(dirname "$initdb"))"
    else
        fail postgres "apt postgresql"
    fi
}

# pip_version PKG: the version installed in the venv, or nothing.
pip_version() {
    [ -x "$DIR/venv/bin/python" ] || return 0
    "$DIR/venv/bin/python" - "$1" <<'EOF' 2>/dev/null || true
import sys, importlib.metadata as m
try:
    print(m.version(sys.argv[1]))
except m.PackageNotFoundError:
    pass
EOF
}

ensure_venv() {
    if [ -x "$DIR/venv/bin/python" ]; then
        return 0
    fi
    local py
    py="$(command -v python3 || true)"
    if [ -z "$py" ]; then
        say "venv: python3 not found; install it (apt-get install python3 python3-venv)"
        return 1
    fi
    say "venv: creating $DIR/venv"
    mkdir -p "$DIR"
    "$py" -m venv "$DIR/venv" >&2 || {
        say "venv: python3 -m venv failed; on Debian install python3-venv"
        return 1
    }
    "$DIR/venv/bin/python" -m pip install -q --upgrade pip >&2 || true
}

# pip_ensure NAME DIST VERSION SPEC BINARY
pip_ensure() {
    local name="$1" dist="$2" version="$3" spec="$4" binary="$5"
    local have
    have="$(pip_version "$dist")"
    if [ "$have" = "$version" ] && [ -x "$DIR/venv/bin/$binary" ]; then
        ok "$name" "already present ($dist $have, $DIR/venv/bin/$binary)"
        return
    fi
    if ! ensure_venv; then
        fail "$name" "could not create the venv at $DIR/venv"
        return
    fi
    say "$name: pip install $spec"
    if "$DIR/venv/bin/python" -m pip install -q --disable-pip-version-check "$spec" >&2 &&
        [ -x "$DIR/venv/bin/$binary" ]; then
        ok "$name" "installed ($dist $(pip_version "$dist"), $DIR/venv/bin/$binary)"
    else
        fail "$name" "pip install $spec into $DIR/venv"
    fi
}

install_moto() {
    pip_ensure moto moto "$MOTO_VERSION" "moto[server]==$MOTO_VERSION" moto_server
}

install_gcs() {
    pip_ensure gcs gcp-storage-emulator "$GCS_EMULATOR_VERSION" \
        "gcp-storage-emulator==$GCS_EMULATOR_VERSION" gcp-storage-emulator
}

install_s3s_fs() {
    local bin="$DIR/bin/s3s-fs"
    # cargo install records what it installed under --root in .crates.toml.
    if [ -x "$bin" ] && grep -q "\"s3s-fs $S3S_FS_VERSION " "$DIR/.crates.toml" 2>/dev/null; then
        ok s3s-fs "already present (s3s-fs $S3S_FS_VERSION, $bin)"
        return
    fi
    if ! command -v cargo >/dev/null; then
        fail s3s-fs "cargo not found (install Rust with rustup)"
        return
    fi
    say "s3s-fs: cargo install s3s-fs@$S3S_FS_VERSION (takes about 2 minutes on 2 cores)"
    mkdir -p "$DIR"
    # --locked uses the versions the release was tested with; fall back to a
    # fresh resolution if that lockfile no longer builds.
    if cargo install -q --locked "s3s-fs@$S3S_FS_VERSION" --features binary --root "$DIR" >&2 ||
        cargo install -q "s3s-fs@$S3S_FS_VERSION" --features binary --root "$DIR" >&2; then
        ok s3s-fs "installed (s3s-fs $S3S_FS_VERSION, $bin)"
    else
        fail s3s-fs "cargo install s3s-fs@$S3S_FS_VERSION --features binary --root $DIR"
    fi
}

install_azurite() {
    local prefix="$DIR/node"
    local bin="$prefix/node_modules/.bin/azurite-blob"
    local pkg="$prefix/node_modules/azurite/package.json"
    local have=""
    if [ -f "$pkg" ] && command -v node >/dev/null; then
        have="$(node -p "require(process.argv[1]).version" "$pkg" 2>/dev/null || true)"
    fi
    if [ "$have" = "$AZURITE_VERSION" ] && [ -x "$bin" ]; then
        ok azurite "already present (azurite $have, $bin)"
        return
    fi
    if ! command -v npm >/dev/null; then
        fail azurite "npm not found (apt-get install nodejs npm, or a Node.js 18+ from nodejs.org)"
        return
    fi
    say "azurite: npm install azurite@$AZURITE_VERSION (about 370 MB of node_modules)"
    mkdir -p "$prefix"
    if npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
        "azurite@$AZURITE_VERSION" >&2 && [ -x "$bin" ]; then
        ok azurite "installed (azurite $AZURITE_VERSION, $bin)"
    else
        fail azurite "npm install --prefix $prefix azurite@$AZURITE_VERSION"
    fi
}

# Parse the arguments into a list of canonical names, in the order of ALL.
WANT=()
for arg in "$@"; do
    case "$arg" in
    -h | --help) usage; exit 0 ;;
    --list) printf '%s\n' "${ALL[@]}"; exit 0 ;;
    protoc | protobuf | protobuf-compiler) WANT+=(protoc) ;;
    crypto-tools | ssh-keygen | openssl) WANT+=(crypto-tools) ;;
    etcd) WANT+=(etcd) ;;
    postgres | postgresql | pg) WANT+=(postgres) ;;
    moto | dynamodb) WANT+=(moto) ;;
    gcs | gcp-storage-emulator) WANT+=(gcs) ;;
    s3s-fs | s3s | s3) WANT+=(s3s-fs) ;;
    azurite | azure) WANT+=(azurite) ;;
    all) WANT+=("${ALL[@]}") ;;
    *)
        echo "unknown server: $arg" >&2
        usage >&2
        exit 2
        ;;
    esac
done
[ "${#WANT[@]}" -eq 0 ] && WANT=("${ALL[@]}")

wanted() {
    local w
    for w in "${WANT[@]}"; do [ "$w" = "$1" ] && return 0; done
    return 1
}

START=$SECONDS
for name in "${ALL[@]}"; do
    wanted "$name" || continue
    STEP_START=$SECONDS
    case "$name" in
    protoc) install_protoc ;;
    crypto-tools) install_crypto_tools ;;
    etcd) install_etcd ;;
    postgres) install_postgres ;;
    moto) install_moto ;;
    gcs) install_gcs ;;
    s3s-fs) install_s3s_fs ;;
    azurite) install_azurite ;;
    esac
done

echo "test services in $DIR ($((SECONDS - START)) s):"
printf '  %s\n' "${SUMMARY[@]}"
if [ "${#FAILED[@]}" -gt 0 ]; then
    echo "FAILED: ${FAILED[*]}" >&2
    exit 1
fi
