"""The other side of entitle's interoperability tests: PyJWT and
`cryptography`, used the way a vendor's own tooling would use them.

    jose.py keygen PREFIX                 -> writes PREFIX.key/.pub, prints the kid
    jose.py thumbprint PUB_PEM            -> prints the RFC 7638 kid of a public key
    jose.py sign KEY_PEM KID TYP CLAIMS   -> prints a compact JWS (CLAIMS is JSON)
    jose.py decode TOKEN_FILE PUB_PEM     -> prints {"header": ..., "payload": ...}
    jose.py decode-raw TOKEN_FILE X       -> the same, verified with the Ed25519 key whose
                                             32 bytes are base64url X (an install key), plus
                                             "thumbprint": the RFC 7638 kid of X
    jose.py respond KEY_PEM KID REQUEST_FILE ISSUED_AT
                                          -> prints a machine certificate answering an
                                             activation request, bound to its install key

The kid is computed here from RFC 7638 directly, not by asking entitle, so
the two implementations check each other.
"""

import base64
import hashlib
import json
import sys

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def thumbprint(public_pem: bytes) -> str:
    key = serialization.load_pem_public_key(public_pem)
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return thumbprint_raw(raw)


def thumbprint_raw(raw: bytes) -> str:
    # RFC 7638 section 3: the required members, in lexicographic order, no whitespace.
    jwk = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)},
        separators=(",", ":"),
        sort_keys=True,
    )
    return b64url(hashlib.sha256(jwk.encode("ascii")).digest())


def strip_armor(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines()]
    return "".join(line for line in lines if line and not line.startswith("-----"))


def main(argv):
    command, args = argv[1], argv[2:]
    if command == "keygen":
        (prefix,) = args
        key = Ed25519PrivateKey.generate()
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        with open(prefix + ".key", "wb") as f:
            f.write(private_pem)
        with open(prefix + ".pub", "wb") as f:
            f.write(public_pem)
        print(thumbprint(public_pem))
    elif command == "thumbprint":
        (path,) = args
        with open(path, "rb") as f:
            print(thumbprint(f.read()))
    elif command == "sign":
        key_path, kid, typ, claims = args
        with open(key_path, "rb") as f:
            key = f.read()
        print(
            jwt.encode(
                json.loads(claims),
                key,
                algorithm="EdDSA",
                headers={"kid": kid, "typ": typ},
            )
        )
    elif command == "decode":
        token_path, pub_path = args
        with open(token_path) as f:
            token = strip_armor(f.read())
        with open(pub_path, "rb") as f:
            public_pem = f.read()
        payload = jwt.decode(token, public_pem, algorithms=["EdDSA"])
        header = jwt.get_unverified_header(token)
        print(json.dumps({"header": header, "payload": payload}))
    elif command == "decode-raw":
        token_path, x = args
        with open(token_path) as f:
            token = strip_armor(f.read())
        raw = b64url_decode(x)
        key = Ed25519PublicKey.from_public_bytes(raw)
        payload = jwt.decode(token, key, algorithms=["EdDSA"])
        header = jwt.get_unverified_header(token)
        print(json.dumps({"header": header, "payload": payload, "thumbprint": thumbprint_raw(raw)}))
    elif command == "respond":
        # What a vendor's own server does with a request, in any language:
        # read it, and sign a certificate for its device bound to its key.
        key_path, kid, request_path, issued_at = args
        with open(key_path, "rb") as f:
            key = f.read()
        with open(request_path) as f:
            request = json.load(f)
        claims = {
            "v": 1,
            "license_id": request["license_id"],
            "fingerprint": request["fingerprint"],
            "issued_at": issued_at,
            "install_key": request["install_key"],
        }
        # A device the install named is bound to the machine it asked
        # from: the certificate repeats it.
        if "machine" in request:
            claims["machine"] = request["machine"]
        print(jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid, "typ": "machine"}))
    else:
        sys.exit("unknown command " + command)


if __name__ == "__main__":
    main(sys.argv)
