# Sourced by every stand-in: appends the call to /var/log/standin.log.
record() {
  printf '%s %s\n' "$(date +%s.%N)" "$*" >>/var/log/standin.log
}
installed() {
  [ -f "/var/lib/standin/installed/$1" ]
}
