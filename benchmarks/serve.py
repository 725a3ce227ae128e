"""Serving: batched sampling against one at a time, and `charrnn serve` under load from concurrent clients.

    python benchmarks/serve.py [--hidden 384] [--clients 1,32] [--seconds 60] [--model M.npz]

1. Batched sampling, in this process: Model.sample_batch of K=64 samples of
   200 characters against K=1, characters per second (7 rounds, alternating;
   medians, and the median of the rounds' ratios).
2. Load: trains a GRU of --hidden units for a few steps on corpora/pantry.txt
   (speed does not depend on what it learned) unless --model is given,
   starts `charrnn serve` on a free port, and for each client count runs
   that many threads for --seconds (the single client for a third of that),
   each looping over mixed requests: generate 200 characters (whole),
   probs of a 100-character text, score of a 500-character text. It
   reports requests, errors, p50 and p99 latency per kind, characters
   generated per second, and the server's resident memory (sampled each
   second; its spread after the first 10 s of the largest run).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
PANTRY = os.path.join(ROOT, "corpora", "pantry.txt")
ROUNDS = 7  # alternating rounds of K=1 and K=64


def batched_sampling(model_path: str, rounds: int = ROUNDS) -> tuple[float, float, float]:
    """(chars/s at K=1, chars/s at K=64, median ratio), 200 characters per sample.

    K=1 and K=64 alternate, ``rounds`` times each, so that both sides of each
    ratio see the same machine; the rates are medians, the ratio the median
    of the rounds' ratios.
    """
    import charrnn

    m = charrnn.load(model_path)

    def rate(k, seed):
        t0 = time.perf_counter()
        texts = m.sample_batch(k, n=200, seed=seed, prime="1. ")
        return sum(map(len, texts)) / (time.perf_counter() - t0)

    rate(4, 0)  # warm up
    ones, manys = [], []
    for seed in range(rounds):
        ones.append(rate(1, seed))
        manys.append(rate(64, seed))
    ratio = statistics.median(b / a for a, b in zip(ones, manys))
    return statistics.median(ones), statistics.median(manys), ratio


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def connect(port: int) -> http.client.HTTPConnection:
    """A keep-alive connection with Nagle's algorithm off, as curl, browsers and urllib3 open them.

    (http.client sends a request's headers and body in two writes; with Nagle
    on, the body then waits for the server's delayed ACK, about 40 ms, on
    every request after the first.)
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def client(port: int, until: float, stats: dict, lock: threading.Lock, seed: int) -> None:
    text = open(PANTRY, encoding="utf-8").read()
    kinds = [("generate", {"prime": "1. ", "length": 200, "seed": seed}),
             ("probs", {"text": text[seed * 100 : seed * 100 + 100], "k": 5}),
             ("score", {"text": text[seed * 500 : seed * 500 + 500]})]
    conn, i = connect(port), seed
    while time.monotonic() < until:
        kind, body = kinds[i % len(kinds)]
        i += 1
        t0 = time.perf_counter()
        try:
            conn.request("POST", f"/v1/{kind}", json.dumps(body), {"Content-Type": "application/json"})
            r = conn.getresponse()
            payload = r.read()
            ok = r.status == 200
        except (OSError, http.client.HTTPException):
            ok, payload = False, b""
            conn = connect(port)
        took = time.perf_counter() - t0
        with lock:
            stats.setdefault(kind, []).append(took)
            if not ok:
                stats["errors"] = stats.get("errors", 0) + 1
            elif kind == "generate":
                stats["chars"] = stats.get("chars", 0) + sum(s["chars"] for s in json.loads(payload)["samples"])


def load(port: int, clients: int, seconds: float, pid: int) -> dict:
    stats, lock = {}, threading.Lock()
    t0 = time.monotonic()
    until = t0 + seconds
    threads = [threading.Thread(target=client, args=(port, until, stats, lock, i)) for i in range(clients)]
    for t in threads:
        t.start()
    memory = []
    while any(t.is_alive() for t in threads):
        memory.append((time.monotonic() - t0, rss_mb(pid)))
        time.sleep(1.0)
    for t in threads:
        t.join()
    stats["seconds"], stats["memory"] = time.monotonic() - t0, memory
    return stats


def percentile(values: list, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--clients", default="1,32")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--model", help="a checkpoint to serve instead of training one")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="charrnn-serve-")
    model = args.model or os.path.join(tmp, "m.npz")
    if not args.model:
        subprocess.run([sys.executable, "-m", "charrnn", "train", PANTRY, "--steps", "30", "--hidden", str(args.hidden),
                        "-o", model, "-q"], check=True)
    one, many, ratio = batched_sampling(model)
    print(f"batched sampling, H={args.hidden}, 200 characters each, median of {ROUNDS} alternating rounds: K=1 {one:,.0f} "
          f"chars/s, K=64 {many:,.0f} chars/s: {ratio:.1f}x", flush=True)
    proc = subprocess.Popen([sys.executable, "-m", "charrnn", "serve", model, "--port", "0"], stderr=subprocess.PIPE,
                            text=True)
    port = int(proc.stderr.readline().split("http://127.0.0.1:")[1].split("/")[0])
    try:
        load(port, 4, 5, proc.pid)  # warm up
        rates = {}
        print(f"{'clients':>7} {'requests':>9} {'errors':>6} {'gen p50/p99 s':>14} {'probs p50/p99 s':>16} "
              f"{'score p50/p99 s':>16} {'chars/s':>8} {'RSS MB':>12}")
        for n in (int(c) for c in args.clients.split(",")):
            s = load(port, n, args.seconds if n > 1 else args.seconds / 3, proc.pid)
            rates[n] = s.get("chars", 0) / s["seconds"]
            lat = {k: f"{percentile(s[k], .5):.3f}/{percentile(s[k], .99):.3f}" for k in ("generate", "probs", "score")}
            late = [mb for t, mb in s["memory"] if t >= 10] or [mb for _, mb in s["memory"]]
            total = sum(len(s[k]) for k in ("generate", "probs", "score"))
            print(f"{n:>7} {total:>9} {s.get('errors', 0):>6} {lat['generate']:>14} {lat['probs']:>16} "
                  f"{lat['score']:>16} {rates[n]:>8,.0f} {min(late):>5.0f}-{max(late):<5.0f}", flush=True)
            if n > 1:
                mean = statistics.mean(late)
                print(f"        RSS after 10 s: {min(late):.0f} to {max(late):.0f} MB, "
                      f"{100 * (min(late) / mean - 1):+.1f}% / {100 * (max(late) / mean - 1):+.1f}% of its mean")
        if len(rates) > 1:
            lo, hi = min(rates), max(rates)
            print(f"characters generated per second, {hi} clients against {lo}: {rates[hi] / rates[lo]:.1f}x")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
