"""The other side of entitle's interoperability tests: PyJWT and
`cryptography`, used the way a vendor's own tooling would use them.

    jose.py keygen PREFIX                 -> writes PREFIX.key/.pub, prints the kid
    jose.py thumbprint PUB_PEM            -> prints the RFC 7638 kid of a public key
    jose.py sign KEY_PEM KID TYP CLAIMS   -> prints a compact JWS (CLAIMS is JSON)
    jose.py decode TOKEN_FILE PUB_PEM     -> prints {"header": ..., "payload": ...}

The kid is computed here from RFC 7638 directly, not by asking entitle, so
the two implementations check each other.
"""

import base64
import hashlib
import json
import sys

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def thumbprint(public_pem: bytes) -> str:
    key = serialization.load_pem_public_key(public_pem)
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
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
    else:
        sys.exit("unknown command " + command)


if __name__ == "__main__":
    main(sys.argv)
