#!/bin/sh
# Makes the CRL fixtures of tests/ike_certs.rs from the CAs make.sh made (run from this
# directory, after make.sh; OpenSSL 3.0). v2 CRLs (with a CRL number), SHA-256:
#   ca-revokes-rsa-b.crl   the root revokes rsa-b (valid 10 years)
#   ca-revokes-inter.crl   the root revokes the intermediate CA (ec-a/ec-b's issuer)
#   ca-empty.crl           the root revokes nothing
#   ca-stale.crl           the root revokes rsa-b; nextUpdate one hour after it ran (stale at
#                          the tests' 2027-06-01)
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
crl() { # out issuer hours [cert to revoke]
  : > "$tmp/index.txt"
  echo 01 > "$tmp/crlnumber"
  cat > "$tmp/ca.cnf" <<X
[ca]
default_ca = d
[d]
database = $tmp/index.txt
crlnumber = $tmp/crlnumber
default_md = sha256
X
  if [ -n "${4:-}" ]; then
    openssl ca -config "$tmp/ca.cnf" -cert "$2.crt" -keyfile "$2.key" -revoke "$4.crt" \
      -crl_reason keyCompromise
  fi
  openssl ca -config "$tmp/ca.cnf" -cert "$2.crt" -keyfile "$2.key" -gencrl -crlhours "$3" \
    -out "$1"
}
crl ca-revokes-rsa-b.crl ca 87600 rsa-b
crl ca-revokes-inter.crl ca 87600 inter
crl ca-empty.crl ca 87600
crl ca-stale.crl ca 1 rsa-b
