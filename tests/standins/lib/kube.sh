# Sourced by the kubeadm, kubectl and kubelet stand-ins.

# host:port of the API server a kubeconfig points at.
api_server() {
  sed -n 's|^[[:space:]]*server: https://||p' "$1" | head -n 1
}

# Calls the stand-in API server at $1 (host:port): GET /cgi-bin/$2. Its
# TLS is what clients of the cluster check; the stand-ins' own calls, with
# or without the CA at hand, do not.
api() {
  /usr/bin/curl -sSk -m 10 "https://$1/cgi-bin/$2"
}

# Days a leaf certificate the stand-in kubeadm issues lasts: kubeadm's
# year, unless a test wrote fewer to /var/lib/standin/cert-days (a cluster
# made long ago, without waiting for it).
cert_days() {
  cat /var/lib/standin/cert-days 2>/dev/null || echo 365
}

# A client certificate for USER in ORGANIZATION signed by the cluster CA,
# base64 on one line, then its key the same way (two lines). kubeadm signs
# admin.conf's and the first kubelet.conf's so; where the CA key is not
# here (a joiner's kubelet gets its certificate through TLS bootstrapping,
# which the stand-ins do not model), a placeholder.
client_credentials() {
  local user="$1" org="$2" pki=/etc/kubernetes/pki work
  if [ ! -f "$pki/ca.key" ]; then
    printf 'c3RhbmQtaW4K\nc3RhbmQtaW4K\n'
    return
  fi
  work=$(mktemp -d)
  openssl req -new -newkey rsa:2048 -nodes -subj "/O=$org/CN=$user" \
    -keyout "$work/key" -out "$work/csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >"$work/ext"
  openssl x509 -req -in "$work/csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days "$(cert_days)" -extfile "$work/ext" -out "$work/crt" 2>/dev/null
  base64 -w0 "$work/crt"
  echo
  base64 -w0 "$work/key"
  echo
  rm -rf "$work"
}

# A kubeconfig for `user` against `endpoint` (host:port), like kubeadm's.
write_kubeconfig() {
  local file="$1" endpoint="$2" user="$3" org=system:masters creds
  case $user in system:node:*) org=system:nodes ;; esac
  creds=$(client_credentials "$user" "$org")
  (umask 077 && cat >"$file") <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: $(base64 -w0 </etc/kubernetes/pki/ca.crt)
    server: https://${endpoint}
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: ${user}
  name: ${user}@kubernetes
current-context: ${user}@kubernetes
users:
- name: ${user}
  user:
    client-certificate-data: $(printf '%s\n' "$creds" | sed -n 1p)
    client-key-data: $(printf '%s\n' "$creds" | sed -n 2p)
KUBECONFIG
}

# The first value of `key:` in a kubeadm YAML file.
yaml_value() {
  sed -n "s/^[[:space:]]*$1:[[:space:]]*//p" "$2" | head -n 1
}

# The sha256 of the public key of a CA certificate (PEM on stdin), as
# kubeadm's --discovery-token-ca-cert-hash has it (without "sha256:").
ca_hash() {
  openssl x509 -pubkey | openssl pkey -pubin -outform der 2>/dev/null | openssl dgst -sha256 -hex | sed 's/^.* //'
}

# ca_hash of the CA a kubeconfig trusts.
kubeconfig_ca_hash() {
  sed -n 's/^[[:space:]]*certificate-authority-data:[[:space:]]*//p' "$1" | head -n 1 | base64 -d | ca_hash
}
