# Sourced by the stand-in API server's CGI scripts. Cluster state is kept
# in etcd (kv); what the tests read of the calls stays in a file.
reg=/var/lib/standin/apiserver
kv=/usr/local/lib/standin/kv
now="$(date +%s)"
printf 'Content-Type: text/plain\r\n\r\n'
param() {
  printf '%s\n' "$QUERY_STRING" | tr '&' '\n' | sed -n "s/^$1=//p" | head -n 1
}
calls() {
  echo "$now $*" >>"$reg/calls.log"
}
new_token() {
  t="$(tr -dc 'a-z0-9' </dev/urandom | head -c 6).$(tr -dc 'a-z0-9' </dev/urandom | head -c 16)"
  echo "$t $((now + ${1:-86400}))" | $kv put "tokens/${t%%.*}"
  echo "$t"
}
