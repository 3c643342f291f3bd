# Sourced by the stand-in API server's CGI scripts.
reg=/var/lib/standin/apiserver
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
  echo "$t $((now + ${1:-86400}))" >"$reg/tokens/${t%%.*}"
  echo "$t"
}
