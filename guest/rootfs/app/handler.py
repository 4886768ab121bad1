# snapbox example Python request handler (the Python layer's /usr/bin/python3).
#
#   snapbox template create py --mem 512M -- /usr/bin/python3 /app/handler.py
#   echo '{"n": 30}' | snapbox run py
#
# Set-up first, everything a template can skip: imports, compiled regexes, a
# first use of hashlib/json/base64.  The first read of stdin is the ready
# point (the template is saved there); everything after it runs per clone.
#
# Request (JSON object, all fields optional):
#   "n":     integer 0..10000 (default 10)
#   "text":  string (default "hello snapbox")
#   "raise": string: raise RuntimeError(it) (Python prints the traceback on
#            stderr and exits 1)
# Answer (one line of JSON on stdout):
#   {"n": N, "fib": fib(N), "sum": 0+1+..+N, "isqrt": isqrt(N),
#    "words": [lower-case words of text, in order], "sha256": hex sha256 of
#    text's UTF-8, "b64": base64 of it, "token": 16 hex digits of random,
#    "pid": os.getpid()}
# fib(0)=0, fib(1)=1.  "token" comes from `random` reseeded after the read:
# without the reseed every clone of a template would draw the same numbers
# (the Mersenne Twister state is part of the snapshot).  A request that is not
# a JSON object, or a bad "n": {"error": "..."} and exit 1.
import base64
import hashlib
import json
import math
import os
import random
import re
import sys

WORD = re.compile(r"[a-z0-9]+")


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def answer(req):
    if not isinstance(req, dict):
        raise ValueError("request is not a JSON object")
    if "raise" in req:
        raise RuntimeError(str(req["raise"]))
    n = req.get("n", 10)
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= 10000:
        raise ValueError("n must be an integer in 0..10000")
    text = req.get("text", "hello snapbox")
    if not isinstance(text, str):
        raise ValueError("text must be a string")
    raw = text.encode()
    return {
        "n": n,
        "fib": fib(n),
        "sum": sum(range(n + 1)),
        "isqrt": math.isqrt(n),
        "words": WORD.findall(text.lower()),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "b64": base64.b64encode(raw).decode(),
        "token": "%016x" % random.getrandbits(64),
        "pid": os.getpid(),
    }


# Warm-up before the ready point: the first call of each of these allocates
# and fills caches; done here, that work is in the template, not in a clone.
answer({"n": 3, "text": "warm up"})
json.dumps(json.loads('{"a": [1, 2.5, "x", null, true]}'))

data = sys.stdin.read()  # the ready point
random.seed()            # per clone: from os.urandom (the host), not the template's state
try:
    req = json.loads(data)
    out = answer(req)
except ValueError as e:  # not JSON, or a bad field ("raise" is a RuntimeError)
    print(json.dumps({"error": str(e)}))
    sys.exit(1)
print(json.dumps(out))
# Done: leave without CPython's finalization (freeing every object, module
# by module), which writes thousands of pages nobody will read again: in a
# clone each is a copy-on-write fault.  Flush first; os._exit skips that too.
sys.stdout.flush()
os._exit(0)
