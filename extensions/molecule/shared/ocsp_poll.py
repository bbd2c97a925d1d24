"""Asks OCSP responders for one certificate's status with the openssl CLI, as a client
would, until every responder gives the expected answer or the time is up.

Runs on the client container with its system python (no third-party imports).
Each responder is asked twice per round: with a nonce (a live signature) and without
(the pre-signed answer). An answer counts only when openssl verified the response
("Response verify OK") and printed a status line for the certificate.
Prints one JSON object; exits 1 when the expectation is not met in time."""
import argparse
import json
import re
import subprocess
import sys
import time

STATUS = re.compile(r"^[^\n]*: (good|revoked|unknown)\s*$", re.M)
REASON = re.compile(r"^\s*Reason: (\S+)", re.M)


def ask(url, args, nonce):
    cmd = ["openssl", "ocsp", "-issuer", args.issuer, "-cert", args.cert, "-url", url,
           "-CAfile", args.cafile, "-timeout", "5"]
    if not nonce:
        cmd.append("-no_nonce")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    out = proc.stdout + proc.stderr
    status = STATUS.search(proc.stdout)
    reason = REASON.search(proc.stdout)
    return {
        "status": status.group(1) if status else None,
        "reason": reason.group(1) if reason else None,
        "verified": "Response verify OK" in out,
        "warning": "WARNING" in out,
        "rc": proc.returncode,
        "output": out.strip()[-600:],
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--expect", required=True, choices=["good", "revoked"])
    parser.add_argument("--since", type=float, help="epoch seconds the clock starts at (default: now)")
    parser.add_argument("--within", type=float, required=True, help="seconds allowed after --since")
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args()
    since = args.since or time.time()

    while True:
        answers = {f"{url} {'nonce' if nonce else 'no-nonce'}": ask(url, args, nonce)
                   for url in args.urls for nonce in (True, False)}
        elapsed = time.time() - since
        met = all(a["status"] == args.expect and a["verified"] and not a["warning"]
                  and a["rc"] == 0 for a in answers.values())
        if met or elapsed > args.within:
            break
        time.sleep(0.1)
    print(json.dumps({"met": met, "elapsed": round(elapsed, 3), "expect": args.expect,
                      "answers": answers}, indent=1))
    return 0 if met and elapsed <= args.within else 1


if __name__ == "__main__":
    sys.exit(main())
