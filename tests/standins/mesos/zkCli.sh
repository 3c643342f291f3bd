#!/bin/sh
# zkCli.sh: `config`, `reconfig -add SPEC`, `reconfig -remove ID` against the
# stand-in ZooKeeper at -server HOST:PORT.
server=127.0.0.1:2181
if [ "${1:-}" = -server ]; then
  server=$2
  shift 2
fi
case "${1:-} ${2:-}" in
  "config "*) wget -q -O- "http://$server/config" ;;
  "reconfig -add") wget -q -O- --post-data "add=$3" "http://$server/reconfig" ;;
  "reconfig -remove") wget -q -O- --post-data "remove=$3" "http://$server/reconfig" ;;
  *) echo "stand-in zkCli.sh: $*: not supported" >&2; exit 1 ;;
esac
