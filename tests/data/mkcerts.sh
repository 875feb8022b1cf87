#!/bin/sh
# mkcerts.sh DIR - test certificates for the SNI ingress, made with openssl
# into DIR (created if needed).  Used by tests/unit/t-tls.c and the SNI
# integration scenario; nothing here is committed as key material.
#
#   ca.pem ca.key           private test CA (EC P-256)
#   ec.pem ec.key           EC P-256 leaf, CN=*.example.com, SAN *.example.com
#   ec-chain.pem            ec.pem followed by ca.pem
#   ec-trad.key             ec.key as "EC PRIVATE KEY" (SEC1)
#   ec384.pem ec384.key     EC P-384 leaf, CN=*.example.com
#   rsa.pem rsa.key         RSA-2048 leaf, CN=*.example.com, SAN *.example.com
#   rsa-trad.key            rsa.key as "RSA PRIVATE KEY" (PKCS#1)
#   san.pem san.key         CN=www.example.org, SAN www.example.org, *.example.com, *.localhost
#   cn.pem cn.key           CN=*.cn.test and no SAN at all
#   cnsan.pem cnsan.key     CN=*.cn.test, SAN *.san.test
#   nowild.pem nowild.key   CN=host.example.com, SAN host.example.com (no wildcard)
#   rot.pem rot.key         a second EC leaf for *.example.com (O=rotated)
#   rsarot.pem rsarot.key   a second RSA leaf for *.example.com (O=rotated)
set -eu
D=$1
mkdir -p "$D"
cd "$D"

serial() {
	od -An -N8 -tx1 /dev/urandom | tr -d ' \n' | sed 's/^/0x7/' | cut -c1-17
}

# key NAME ec|ec384|rsa
key() {
	case $2 in
	ec) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null ;;
	ec384) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$1.key" 2>/dev/null ;;
	rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.key" 2>/dev/null ;;
	esac
}

# leaf NAME KEYTYPE SUBJECT [SAN]
leaf() {
	key "$1" "$2"
	openssl req -new -key "$1.key" -subj "$3" -out "$1.csr" 2>/dev/null
	if [ -n "${4:-}" ]; then
		printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\n' "$4" >"$1.ext"
	else
		printf 'basicConstraints=CA:FALSE\n' >"$1.ext"
	fi
	openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -set_serial "$(serial)" -days 30 \
		-extfile "$1.ext" -out "$1.pem" 2>/dev/null
	rm -f "$1.csr" "$1.ext"
}

key ca ec
openssl req -x509 -new -key ca.key -subj "/CN=exposrd test CA" -days 30 -set_serial "$(serial)" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	-out ca.pem 2>/dev/null

leaf ec ec "/O=exposrd test/CN=*.example.com" "DNS:*.example.com"
cat ec.pem ca.pem >ec-chain.pem
openssl ec -in ec.key -out ec-trad.key 2>/dev/null
leaf ec384 ec384 "/CN=*.example.com"
leaf rsa rsa "/CN=*.example.com" "DNS:*.example.com"
openssl rsa -in rsa.key -traditional -out rsa-trad.key 2>/dev/null
leaf san ec "/CN=www.example.org" "DNS:www.example.org,DNS:*.example.com,DNS:*.localhost"
leaf cn ec "/CN=*.cn.test"
leaf cnsan ec "/CN=*.cn.test/O=exposrd test" "DNS:*.san.test"
leaf nowild ec "/CN=host.example.com" "DNS:host.example.com"
leaf rot ec "/O=rotated/CN=*.example.com" "DNS:*.example.com"
leaf rsarot rsa "/O=rotated/CN=*.example.com" "DNS:*.example.com"
