"""PyJWT's verifications per second of the token in DIR (made by scripts/bench-auth), on one thread:
python pyjwt_verify.py DIR SECONDS"""

import sys
import time

import jwt
from cryptography import x509

work, seconds = sys.argv[1], float(sys.argv[2])
token = open(f"{work}/token").read().strip()
key = x509.load_pem_x509_certificate(open(f"{work}/cert.pem", "rb").read()).public_key()


def verify():
    jwt.decode(token, key, algorithms=["RS256"], audience="demo-project",
               issuer="https://securetoken.google.com/demo-project", leeway=60)


verify()
count, start = 0, time.perf_counter()
while time.perf_counter() - start < seconds:
    for _ in range(64):
        verify()
    count += 64
print(int(count / (time.perf_counter() - start)))
