"""A test identity provider for auth.jwt (standard library + the openssl
command line): RSA and EC P-256 keys made at test time, a JWKS written to a
file or served over HTTP with Cache-Control (and able to go down), key
rotation, and JWTs minted for the tests, good or broken on purpose.

Python's standard library cannot sign with RSA or ECDSA, so signatures come
from `openssl dgst -sha256 -sign`; ES256 signatures are converted from DER
to the raw r||s that JWS wants.

    idp = IdentityProvider(workdir)
    kid = idp.add_key("RS256")
    idp.serve(max_age=60)             # GET /jwks.json, GET /token?sub=alice
    jwt = idp.mint({"sub": "alice", "aud": "chat-tokend"})
    idp.down(); idp.up()              # the same port

Run as a program it serves until killed:
    python3 idp.py --issuer http://127.0.0.1:PORT/ --audience chat-tokend [--port N]
and prints {"port": N, "issuer": ...} on its first line.
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _openssl(*args, data=None):
    return subprocess.run(["openssl"] + list(args), input=data, capture_output=True,
                          check=True).stdout


def _der_to_raw(der, size=32):
    """An ECDSA-Sig-Value (SEQUENCE of two INTEGERs) as r||s."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        value = der[i + 2:i + 2 + n].lstrip(b"\0")
        out += value.rjust(size, b"\0")
        i += 2 + n
    return out


class Key:
    """One signing key: its PEM file and its public JWK."""

    def __init__(self, directory, alg, kid, bits=2048, curve="P-256"):
        self.alg = alg
        self.kid = kid
        self.path = os.path.join(directory, kid + ".pem")
        if alg == "RS256":
            _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:%d" % bits,
                     "-out", self.path)
            modulus = _openssl("rsa", "-in", self.path, "-noout", "-modulus").decode()
            n = bytes.fromhex(modulus.strip().split("=", 1)[1])
            self.jwk = {"kty": "RSA", "kid": kid, "use": "sig", "alg": alg, "n": b64url(n),
                        "e": b64url(b"\x01\x00\x01")}
            self.public_pem = _openssl("pkey", "-in", self.path, "-pubout")
        else:
            _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:" + curve,
                     "-out", self.path)
            der = _openssl("pkey", "-in", self.path, "-pubout", "-outform", "DER")
            size = {"P-256": 32, "P-384": 48}[curve]
            point = der[-(2 * size + 1):]
            self.jwk = {"kty": "EC", "kid": kid, "use": "sig", "alg": alg, "crv": curve,
                        "x": b64url(point[1:1 + size]), "y": b64url(point[1 + size:])}
            self.public_pem = _openssl("pkey", "-in", self.path, "-pubout")

    def sign(self, data):
        der = _openssl("dgst", "-sha256", "-sign", self.path, data=data)
        return der if self.alg == "RS256" else _der_to_raw(der)


class IdentityProvider:
    def __init__(self, directory=None, issuer=None, audience="chat-tokend"):
        self._own = directory is None
        self.dir = directory or tempfile.mkdtemp(prefix="ct-idp-")
        self.issuer = issuer
        self.audience = audience
        self.keys = {}  # kid -> Key, the ones published
        self.retired = {}  # kid -> Key, no longer published (can still sign)
        self.max_age = 60
        self.fetches = 0
        self._server = None
        self._thread = None
        self.port = 0
        self._counter = 0

    # -- keys --

    def add_key(self, alg="RS256", kid=None, **kw):
        self._counter += 1
        kid = kid or "%s-%d" % (alg.lower(), self._counter)
        self.keys[kid] = Key(self.dir, alg, kid, **kw)
        return kid

    def remove_key(self, kid):
        self.retired[kid] = self.keys.pop(kid)

    def key(self, kid):
        return self.keys.get(kid) or self.retired[kid]

    def jwks(self, extra=()):
        return {"keys": [k.jwk for k in self.keys.values()] + list(extra)}

    def write_jwks(self, path, extra=()):
        """Writes the JWKS atomically (rename), as a careful tool would."""
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.jwks(extra), f)
        os.replace(tmp, path)

    # -- tokens --

    def claims(self, sub="alice", lifetime=600, **extra):
        now = int(time.time())
        c = {"iss": self.issuer, "aud": self.audience, "sub": sub, "iat": now, "nbf": now,
             "exp": now + lifetime}
        c.update(extra)
        return {k: v for k, v in c.items() if v is not None}

    def mint(self, claims=None, kid=None, alg=None, header=None, secret=None, signature=None):
        """A compact JWS of claims (default: self.claims()). kid: which key
        signs (default: the first published); alg overrides the header's
        alg; secret: sign with HMAC-SHA256 over it instead (algorithm
        confusion); header: extra header members (None values remove);
        signature: bytes to use as is."""
        claims = self.claims() if claims is None else claims
        kid = kid or next(iter(self.keys))
        key = self.key(kid)
        h = {"alg": alg or key.alg, "typ": "JWT", "kid": kid}
        for name, value in (header or {}).items():
            if value is None:
                h.pop(name, None)
            else:
                h[name] = value
        signing_input = (b64url(json.dumps(h)) + "." + b64url(json.dumps(claims))).encode()
        if signature is None:
            if secret is not None:
                signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
            else:
                signature = key.sign(signing_input)
        return signing_input.decode() + "." + b64url(signature)

    # -- HTTP --

    def serve(self, max_age=60, port=0):
        """Serves GET /jwks.json (Cache-Control: max-age) and GET
        /token?sub=NAME (a fresh JWT, for browser tests) on 127.0.0.1."""
        self.max_age = max_age
        idp = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                if url.path == "/jwks.json":
                    idp.fetches += 1
                    self.answer(200, json.dumps(idp.jwks()),
                                [("Cache-Control", "public, max-age=%d" % idp.max_age)])
                elif url.path == "/token":
                    sub = urllib.parse.parse_qs(url.query).get("sub", ["alice"])[0]
                    claims = idp.claims(sub=sub, preferred_username=sub)
                    self.answer(200, json.dumps({"id_token": idp.mint(claims)}),
                                [("Access-Control-Allow-Origin", "*")])
                else:
                    self.answer(404, "{}", [])

            def answer(self, code, body, headers):
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self._handler = Handler
        self._listen(port)
        if self.issuer is None:
            self.issuer = "http://127.0.0.1:%d/" % self.port
        return self

    def _listen(self, port):
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", port), self._handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def jwks_url(self):
        return "http://127.0.0.1:%d/jwks.json" % self.port

    def down(self):
        """Stops answering: connections are refused."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def up(self):
        """Serves again on the same port."""
        if self._server is None:
            self._listen(self.port)

    def close(self):
        self.down()
        if self._own:
            import shutil
            shutil.rmtree(self.dir, ignore_errors=True)


def main():
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--audience", default="chat-tokend")
    args = parser.parse_args()
    idp = IdentityProvider(audience=args.audience)
    idp.add_key("RS256")
    idp.serve(port=args.port)
    print(json.dumps({"port": idp.port, "issuer": idp.issuer, "jwks_url": idp.jwks_url}),
          flush=True)
    try:
        threading.Event().wait()
    finally:
        idp.close()


if __name__ == "__main__":
    sys.exit(main())
