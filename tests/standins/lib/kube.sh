# Sourced by the kubeadm, kubectl and kubelet stand-ins.

# host:port of the API server a kubeconfig points at.
api_server() {
  sed -n 's|^[[:space:]]*server: https://||p' "$1" | head -n 1
}

# Calls the stand-in API server at $1 (host:port): GET /cgi-bin/$2.
api() {
  /usr/bin/curl -sS -m 10 "http://$1/cgi-bin/$2"
}

# A kubeconfig for `user` against `endpoint` (host:port), like kubeadm's.
write_kubeconfig() {
  local file="$1" endpoint="$2" user="$3"
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
    client-certificate-data: c3RhbmQtaW4K
    client-key-data: c3RhbmQtaW4K
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
