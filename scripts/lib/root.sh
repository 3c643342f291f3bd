# shellcheck shell=bash
# Sourced by the set-up scripts, so each runs the same from a root shell
# (where sudo may not even be installed) and from a user's shell with sudo.

# Runs the whole calling script again as root through sudo when it is not
# root already. The user's Rust toolchain (rustup keeps it under the user's
# home) and PATH go along: sudo's secure_path would otherwise hide cargo.
become_root() {
  [ "$(id -u)" = 0 ] && return 0
  if ! command -v sudo >/dev/null; then
    echo "error: $0 needs root (apt-get, dockerd, debootstrap): run it as root, or install sudo" >&2
    exit 1
  fi
  echo "$0: running as root through sudo"
  exec sudo env "PATH=$PATH" \
    "RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}" "CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}" \
    ${CARGO_TARGET_DIR:+"CARGO_TARGET_DIR=$CARGO_TARGET_DIR"} "$0" "$@"
}
