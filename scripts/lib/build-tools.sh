# shellcheck shell=bash
# Sourced by the scripts that run cargo: the etcd client's gRPC code is
# generated at build time by protoc (Debian's protobuf-compiler), so it is
# installed before the first build. A no-op once protoc is there.
ensure_build_tools() {
  command -v protoc >/dev/null && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "error: protoc is missing (the etcd client's build needs it): apt-get install protobuf-compiler" >&2
    return 1
  fi
  echo "installing: protobuf-compiler (protoc, for the etcd client's build)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >/dev/null
}
