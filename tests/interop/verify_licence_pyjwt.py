#!/usr/bin/env python3
"""Verifies a Bohai licence with code that is not Bohai's: PyJWT for the JWS (ES256, exp/nbf)
and `cryptography` for the x5c chain up to the city root given on the command line.

usage: verify_licence_pyjwt.py LICENCE.jws ROOT.pem
Prints the licence number and exits 0 when valid; prints why and exits 1 otherwise.
"""
import base64
import sys

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec


def main() -> int:
    token = open(sys.argv[1]).read().strip()
    root = x509.load_pem_x509_certificate(open(sys.argv[2], "rb").read())
    header = jwt.get_unverified_header(token)
    if header.get("alg") != "ES256":
        print(f"unexpected alg {header.get('alg')}")
        return 1
    chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in header["x5c"]]
    # Each certificate is issued by the next; the last by the root we were given.
    for cert, issuer in zip(chain, chain[1:] + [root]):
        try:
            cert.verify_directly_issued_by(issuer)
        except Exception as e:  # noqa: BLE001 - any failure means "not valid"
            print(f"chain: {cert.subject.rfc4514_string()} not issued by {issuer.subject.rfc4514_string()}: {e}")
            return 1
    key = chain[0].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        print("leaf key is not EC")
        return 1
    try:
        claims = jwt.decode(token, key=key, algorithms=["ES256"], options={"require": ["exp", "nbf", "iat"]})
    except jwt.PyJWTError as e:
        print(f"jws: {e}")
        return 1
    print(claims["licence"]["number"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
