#!/bin/sh
# Regenerates the certificate fixtures of tests/ike_certs.rs (run from this directory).
# Validity: 10 years from the day it ran (these: 2026-12-07 .. 2036-12-04); the tests put
# the wall clock at 2027-06-01, or at 2040 for "expired". Keys: RSA 2048 and ECDSA P-256,
# PKCS#8 PEM. OpenSSL 3.0.
set -eu
cat > ext.cnf <<'X'
[ca]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[leaf_a]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
subjectAltName = DNS:a.example.net, IP:192.0.2.1, email:a@example.net
[leaf_b]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
subjectAltName = DNS:b.example.net, IP:192.0.2.2, email:b@example.net
X
ca() { # name subject: a self-signed CA
  openssl req -x509 -new -key "$1.key" -subj "$2" -out "$1.crt" -sha256 -extensions ca \
    -config ext.cnf -days 3650
}
sign() { # name subject issuer ext
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
  openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -set_serial "0x$(openssl rand -hex 8)" \
    -extfile ext.cnf -extensions "$4" -sha256 -days 3650 -out "$1.crt"
  rm "$1.csr"
}
rsa() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.key"; }
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"; }
ec384() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$1.key"; }
rsa3072() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$1.key"; }
rsa ca; ca ca "/C=XX/O=ferrovpn test/CN=Test Root CA"
rsa other-ca; ca other-ca "/C=XX/O=elsewhere/CN=Other Root CA"
ec inter; sign inter "/C=XX/O=ferrovpn test/CN=Test Intermediate CA" ca ca
rsa rsa-a; sign rsa-a "/C=XX/O=ferrovpn test/CN=a.example.net" ca leaf_a
rsa rsa-b; sign rsa-b "/C=XX/O=ferrovpn test/CN=b.example.net" ca leaf_b
ec ec-a; sign ec-a "/C=XX/O=ferrovpn test/CN=a.example.net" inter leaf_a
ec ec-b; sign ec-b "/C=XX/O=ferrovpn test/CN=b.example.net" inter leaf_b
ec384 p384-a; sign p384-a "/C=XX/O=ferrovpn test/CN=a.example.net" ca leaf_a
ec384 p384-b; sign p384-b "/C=XX/O=ferrovpn test/CN=b.example.net" ca leaf_b
rsa3072 rsa3072-a; sign rsa3072-a "/C=XX/O=ferrovpn test/CN=a.example.net" ca leaf_a
rsa3072 rsa3072-b; sign rsa3072-b "/C=XX/O=ferrovpn test/CN=b.example.net" ca leaf_b
rsa rogue-b; sign rogue-b "/C=XX/O=ferrovpn test/CN=b.example.net" other-ca leaf_b
rsa other-a; sign other-a "/C=XX/O=elsewhere/CN=a.example.net" other-ca leaf_a
rm ext.cnf ./*.srl 2>/dev/null || true
