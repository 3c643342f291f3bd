# shellcheck shell=bash
# Sourced by the set-up scripts: builds a node image unless the engine has it
# in the format scripts/node-image/build.sh makes now (its `version=`, kept
# in the image's org.provision.node-image label), so a machine set up before
# a change to the image gets the change.

NODE_IMAGE_BUILD="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/node-image/build.sh"

# The format the build script makes.
node_image_version() {
  sed -n 's/^version=\([0-9][0-9]*\)$/\1/p' "$NODE_IMAGE_BUILD"
}

# ensure_node_image IMAGE [--bare]: builds IMAGE (with --bare, the image
# without Docker) when it is missing or older than the build script's format.
ensure_node_image() {
  local image=$1 want have
  shift
  want="$(node_image_version)"
  have="$(docker image inspect -f '{{index .Config.Labels "org.provision.node-image"}}' "$image" 2>/dev/null)" || have=""
  if [[ $have =~ ^[0-9]+$ ]] && [ "$have" -ge "$want" ]; then
    return 0
  fi
  if [ -n "$have" ]; then
    echo "node image $image is format $have; building format $want"
  else
    echo "building node image $image"
  fi
  "$NODE_IMAGE_BUILD" "$@" "$image"
}
