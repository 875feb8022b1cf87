/* der.h - the few X.509 certificate fields the SNI ingress needs, read
 * from DER without a crypto library: the subject's CN attributes, the
 * subjectAltName dNSName entries and the serial number.
 *
 * A flat walk over a fixed structure (Certificate, TBSCertificate, Name,
 * Extensions, GeneralNames): no recursion, every length checked against
 * its enclosing element, never a read past len.  Input is untrusted.
 */
#ifndef EXPOSRD_DER_H
#define EXPOSRD_DER_H

#include <stddef.h>
#include <stdint.h>

#define DER_MAX_CERT 65536     /* a certificate larger than this is refused */
#define DER_SERIAL_MAX 20      /* RFC 5280: serial numbers have <= 20 octets */

enum der_name_kind {
	DER_NAME_CN = 1,   /* subject commonName (UTF8/Printable/IA5/T61 string) */
	DER_NAME_DNS = 2,  /* subjectAltName dNSName */
};

/* Called for each name, in certificate order: first every subject CN,
 * then every SAN dNSName.  name is not NUL-terminated and may contain any
 * byte; it points into the certificate. */
typedef void (*der_name_cb)(void *arg, enum der_name_kind kind, const char *name, size_t len);

/* Walk the names of the DER certificate der[0..len).  Returns 0, E_INVAL
 * for a malformed certificate (then cb may already have been called) or
 * E_LIMIT when len > DER_MAX_CERT. */
int der_cert_names(const uint8_t *der, size_t len, der_name_cb cb, void *arg);

/* Serial number as lower-case hex, two digits a byte, leading zero bytes
 * dropped (openssl x509 -serial prints the same digits in upper case).  cap must be >= 2 * DER_SERIAL_MAX + 3 for any valid
 * serial.  Returns 0, E_INVAL or E_LIMIT (serial longer than cap allows). */
int der_cert_serial(const uint8_t *der, size_t len, char *out, size_t cap);

#endif
