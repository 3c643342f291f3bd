#!/bin/sh
# zkCli.sh: `config`, `reconfig -add SPEC`, `reconfig -remove ID` against the
# stand-in ZooKeeper at -server HOST:PORT.
server=127.0.0.1:2181
if [ "${1:-}" = -server ]; then
  server=$2
  shift 2
fi
case "${1:-} ${2:-}" in
  "config "*) /standin/httpc GET "http://$server/config" ;;
  "reconfig -add") /standin/httpc POST "http://$server/reconfig" "add=$3" ;;
  "reconfig -remove") /standin/httpc POST "http://$server/reconfig" "remove=$3" ;;
  *) echo "stand-in zkCli.sh: $*: not supported" >&2; exit 1 ;;
esac
