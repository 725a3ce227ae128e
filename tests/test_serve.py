"""charrnn serve: the JSON API over a real socket, its errors, streams, limits, batching and shutdown."""
import contextlib
import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install 'charrnn[serve]'")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install 'charrnn[serve]'")

import charrnn  # noqa: E402
from charrnn.server import Limits, create_app  # noqa: E402
from charrnn.workers import available_cores  # noqa: E402


class Served:
    """`charrnn serve` as a child process on a free port."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "charrnn", "serve", *map(str, args), "--port", "0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()  # printed once the socket listens
        assert "serving" in line, line + self.proc.stderr.read()
        self.port = int(line.split("http://127.0.0.1:")[1].split("/")[0])

    def request(self, method, path, body=None, raw=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        r = conn.getresponse()
        payload = r.read()
        conn.close()
        return r.status, payload

    def json(self, method, path, body=None, **kw):
        status, payload = self.request(method, path, body, **kw)
        return status, json.loads(payload)

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err


@pytest.fixture(scope="module")
def server(tmp_path_factory, request):
    home = request.getfixturevalue("home_model")
    s = Served(home, "--max-length", 500, "--body-timeout", 1)
    yield s
    s.stop()


def test_the_endpoints_answer_as_the_library_does(server, home_model):
    m = charrnn.load(home_model)
    status, models = server.json("GET", "/v1/models")
    assert status == 200 and models["version"] == "v1" and [c["name"] for c in models["models"]] == ["home"]
    assert "path" not in models["models"][0]  # no file system path leaves the server
    status, card = server.json("GET", "/v1/models/home")
    assert status == 200 and card["history"]["train"] and card["config"]["hidden"] == 32
    status, probs = server.json("POST", "/v1/probs", {"text": "HOM", "k": 3})
    assert [r["next"][0]["char"] for r in probs["predictions"]] == [p.next[0][0] for p in m.probs("HOM", 3)]
    status, score = server.json("POST", "/v1/score", {"text": "HOME\nHOME\n", "per_char": True})
    # the server reads a text as a row of its engine's steps, Model.score in chunks: float32 in another order
    assert score["nats_per_char"] == pytest.approx(m.score("HOME\nHOME\n").nats_per_char, rel=1e-4, abs=1e-7)
    assert len(score["per_char"]) == 9 and score["per_char"][0]["char"] == "O"
    status, gen = server.json("POST", "/v1/generate", {"prime": "HOM", "length": 10, "seed": 3, "num_samples": 3})
    assert status == 200 and len(gen["samples"]) == 3
    assert [s["text"] for s in gen["samples"]] == m.sample_batch(3, n=10, prime="HOM", seed=3)


@pytest.mark.parametrize("form", ["ndjson", "sse"])
def test_generate_streams_each_character_as_it_is_drawn(server, form):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("POST", "/v1/generate", json.dumps({"prime": "H", "length": 12, "seed": 1, "stream": True,
                                                     "format": form, "num_samples": 2}))
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("content-type").startswith(
        "text/event-stream" if form == "sse" else "application/x-ndjson")
    lines = [line for line in r.read().decode().splitlines() if line.strip()]
    events = [json.loads(line[len("data: "):] if form == "sse" else line) for line in lines]
    assert len(events) == 24 and {e["sample"] for e in events} == {0, 1}
    ends = [e for e in events if e.get("done")]
    assert len(ends) == 2 and all(len(e["text"]) == 12 for e in ends)
    assert all(len(e["top"]) == 5 and 0 < e["p"] <= 1 for e in events)


BAD = [  # (what, method, path, body or raw bytes, status, words in the error)
    ("malformed JSON", "POST", "/v1/generate", b'{"length": 5', 400, "not JSON"),
    ("not an object", "POST", "/v1/probs", b"[1, 2]", 400, "JSON object"),
    ("wrong type", "POST", "/v1/generate", {"length": "long"}, 400, "length must be an integer"),
    ("bool for int", "POST", "/v1/probs", {"text": "H", "k": True}, 400, "k must be an integer"),
    ("unknown field", "POST", "/v1/score", {"text": "H", "colour": 1}, 400, "unknown field(s) colour"),
    ("temperature 0", "POST", "/v1/generate", {"temperature": 0}, 422, "temperature must be above 0"),
    ("temperature < 0", "POST", "/v1/generate", {"temperature": -1.5}, 422, "temperature must be above 0"),
    ("top_p 0", "POST", "/v1/generate", {"top_p": 0}, 422, "top_p must be in (0, 1]"),
    ("top_p > 1", "POST", "/v1/generate", {"top_p": 1.5}, 422, "top_p must be in (0, 1]"),
    ("unknown model", "POST", "/v1/probs", {"model": "nope", "text": "H"}, 404, "no model named 'nope'"),
    ("unknown model card", "GET", "/v1/models/nope", None, 404, "no model named"),
    ("outside the vocabulary", "POST", "/v1/probs", {"text": "HOUSE"}, 422, "outside the model's vocabulary"),
    ("prime outside", "POST", "/v1/generate", {"prime": "X", "unknown": "error"}, 422, "'X' (U+0058)"),
    ("bad unknown policy", "POST", "/v1/probs", {"text": "H", "unknown": "ignore"}, 422, "--unknown must be"),
    ("length over the limit", "POST", "/v1/generate", {"length": 501}, 422, "between 1 and 500"),
    ("too many samples", "POST", "/v1/generate", {"num_samples": 65}, 422, "between 1 and 64"),
    ("10 MB body", "POST", "/v1/score", b'{"text": "' + b"H" * 10_000_000 + b'"}', 413, "limit"),
    ("no such route", "GET", "/v2/models", None, 404, "no such route"),
    ("wrong method", "GET", "/v1/generate", None, 405, "method not allowed"),
]


@pytest.mark.parametrize("what,method,path,body,status,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_a_json_error_with_its_status_and_the_server_keeps_serving(server, what, method, path,
                                                                                     body, status, words):
    raw = body if isinstance(body, bytes) else None
    got, payload = server.request(method, path, None if raw else body, raw=raw)
    error = json.loads(payload)["error"]
    assert got == status and words in error, (got, error)
    assert "Traceback" not in error
    assert server.json("GET", "/v1/models")[0] == 200


def _raw(server, data: bytes, wait: float = 10) -> tuple[int, dict]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as s:
        s.sendall(data)
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            piece = s.recv(65536)
            if not piece:
                break
            reply += piece
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, json.loads(body[body.index(b"{"):])


def test_a_body_that_trickles_in_too_slowly_times_out(server):
    head = b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n"
    status, body = _raw(server, head + b'{"text": "HO')  # and then nothing more
    assert status == 408 and "did not arrive within 1 s" in body["error"]
    assert server.json("GET", "/v1/models")[0] == 200


def test_dot_dot_in_the_path_reaches_no_file(server):
    for path in (b"/../etc/passwd", b"/v1/../../etc/passwd", b"/v1/models/..%2f..%2fetc%2fpasswd"):
        status, body = _raw(server, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 404 and "root:" not in json.dumps(body)


def test_ctrl_c_and_sigterm_stop_the_server_cleanly(home_model):
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        s = Served(home_model)
        assert s.json("GET", "/v1/models")[0] == 200
        got, err = s.stop(sig)
        assert got == code and "stopped" in err and "Traceback" not in err


def test_serve_without_the_extra_names_the_pip_command(tmp_path, home_model):
    fake = tmp_path / "starlette"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('not installed (simulated)')\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    r = subprocess.run([sys.executable, "-m", "charrnn", "serve", home_model], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 1 and r.stderr.strip() == (
        "charrnn: error: charrnn serve needs the serve extra: pip install 'charrnn[serve]'")


def test_train_sample_and_import_charrnn_never_import_the_server(tmp_path, home_model):
    for args in (["-c", "import charrnn; charrnn.load"],
                 ["-m", "charrnn", "sample", "-m", home_model, "-n", "5"],
                 ["-m", "charrnn", "train", home_model.replace("home.npz", "") + "../x", "--steps", "1"]):
        r = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, timeout=60)
        loaded = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if "|" in line}
        assert not loaded & {"starlette", "uvicorn", "charrnn.server", "charrnn.engine"}, args


# ---------------------------------------------------------------- in this process: the engine's batching


@contextlib.contextmanager
def uvicorn_in_thread(app):
    """``app`` on a uvicorn server in a thread of this process; yields its port."""
    import uvicorn

    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def in_thread(home_model):
    """The app served in a thread of this process, so that the test can look at its engine."""
    app = create_app({"home": charrnn.load(home_model)}, Limits(max_length=2000))
    with uvicorn_in_thread(app) as port:
        yield port, app.state.service.engines["home"]


def test_a_client_that_goes_away_mid_stream_stops_its_generation(in_thread):
    port, engine = in_thread
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/v1/generate", json.dumps({"length": 2000, "stream": True, "num_samples": 4, "seed": 1}))
    r = conn.getresponse()
    for _ in range(5):
        assert json.loads(r.readline())["char"]
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    deadline = time.monotonic() + 10
    while len(engine.batch) and time.monotonic() < deadline:
        time.sleep(0.02)
    drawn = engine.chars
    time.sleep(0.3)
    assert len(engine.batch) == 0 and engine.chars == drawn < 4 * 2000  # nothing more is drawn for it


def test_concurrent_requests_are_batched_and_each_gets_its_own_text(in_thread, home_model):
    port, engine = in_thread
    m = charrnn.load(home_model)
    results, seen_batch = {}, []

    def ask(seed):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/v1/generate", json.dumps({"length": 300, "seed": seed, "temperature": 1.5}))
        results[seed] = json.loads(conn.getresponse().read())["samples"][0]["text"]

    threads = [threading.Thread(target=ask, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        seen_batch.append(len(engine.batch))
        time.sleep(0.002)
    assert max(seen_batch) > 1  # several requests shared the batch
    for seed, text in results.items():  # and none changed another's text
        assert text == m.sample_batch(1, n=300, seed=seed, temp=1.5)[0]


def _at_once(port: int, bodies: list[dict], route: str = "/v1/score") -> list[tuple[int, dict]]:
    """POST every body at the same time, each from its own thread: [(status, JSON)] in order."""
    answers = [None] * len(bodies)

    def ask(i):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", route, json.dumps(bodies[i]))
        r = conn.getresponse()
        answers[i] = (r.status, json.loads(r.read()))

    askers = [threading.Thread(target=ask, args=(i,)) for i in range(len(bodies))]
    for t in askers:
        t.start()
    for t in askers:
        t.join()
    return answers


def _counting(fn, running, most, lock, pause=0.2):
    """fn, which also counts how many calls run at once into most[0]."""
    def counted(*args):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(pause)
        with lock:
            running[0] -= 1
        return fn(*args)
    return counted


def test_concurrent_scores_are_read_as_rows_of_the_same_steps(home_model, monkeypatch):
    """Each score read its text alone, a character at a time, so concurrent ones shared one core's worth
    of Python; now the texts waiting are rows of the same forward passes of the model's engine."""
    from charrnn import network

    m = charrnn.load(home_model)
    rows, forward = [], network.layers_forward
    monkeypatch.setattr(network, "layers_forward", lambda p, c, x, *a, **k: rows.append(x.shape[1])
                        or forward(p, c, x, *a, **k))
    texts = ["HOME" * (i + 30) for i in range(8)]
    with uvicorn_in_thread(create_app({"home": m})) as port:
        answers = _at_once(port, [{"text": t} for t in texts])
    assert [a[0] for a in answers] == [200] * 8
    assert max(rows) > 1, rows
    for text, (_, got) in zip(texts, answers):
        assert got["chars"] == len(text) - 1
        assert got["nats_per_char"] == pytest.approx(m.score(text).nats_per_char, rel=1e-4, abs=1e-7)


def test_per_character_scores_compute_as_many_at_a_time_as_there_are_cores(home_model):
    """More at once would not finish sooner on these cores, and each in flight holds its own arrays."""
    m = charrnn.load(home_model)
    running, most, lock = [0], [0], threading.Lock()
    m.per_char = _counting(m.per_char, running, most, lock)
    with uvicorn_in_thread(create_app({"home": m})) as port:
        answers = _at_once(port, [{"text": "HOME", "per_char": True}] * 8)
    assert [a[0] for a in answers] == [200] * 8 and all(len(a[1]["per_char"]) == 3 for a in answers)
    assert most[0] == min(8, available_cores())


def test_the_servers_connections_send_without_waiting_for_acks():
    """Accepted connections had Nagle's algorithm on (asyncio skips sockets whose proto is 0), so each
    keep-alive response's body waited ~40 ms for the client's delayed ACK."""
    from charrnn.cli.serve import listening_socket

    with listening_socket("127.0.0.1", 0) as sock, socket.create_connection(sock.getsockname()[:2]) as client:
        accepted, _ = sock.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    with pytest.raises(charrnn.CharRNNError, match="cannot listen on 127.0.0.1:.*choose another --port"):
        with listening_socket("127.0.0.1", 0) as taken:
            listening_socket("127.0.0.1", taken.getsockname()[1])


def test_a_whole_generation_reaches_the_event_loop_once():
    """The engine handed every character of a whole (not streamed) generation to the event loop, one wake-up each."""
    import asyncio

    from charrnn.engine import Drawn, Whole

    async def run():
        loop = asyncio.get_running_loop()
        calls = []
        real = loop.call_soon_threadsafe
        loop.call_soon_threadsafe = lambda *a: calls.append(a) or real(*a)
        whole = Whole(2, loop)
        events = [Drawn(0, "H", 0.5, [], False), Drawn(1, "O", 0.25, [], True), Drawn(0, "M", 1.0, [], True)]
        thread = threading.Thread(target=lambda: [whole.take(d) for d in events])
        thread.start()
        await asyncio.wait_for(whole.finished, 5)
        thread.join()
        return whole, calls

    whole, calls = asyncio.run(run())
    assert len(calls) == 1
    assert ["".join(t) for t in whole.texts] == ["HM", "O"]
    assert whole.nats == pytest.approx([-math.log(0.5), -math.log(0.25)])


def test_a_failed_engine_step_fails_the_requests_in_flight_and_serving_goes_on(in_thread, home_model, monkeypatch,
                                                                               capfd):
    """An exception in the engine's thread ended the thread, and every request to its model then hung."""
    from charrnn import network

    port, engine = in_thread
    m, real, failed = charrnn.load(home_model), network.step_top, []

    def step_top(*args, **kw):  # fails once, in a step that draws samples and reads a text
        if len(engine.reads) and not failed:
            failed.append(True)
            raise FloatingPointError("a step that fails")
        return real(*args, **kw)

    monkeypatch.setattr(network, "step_top", step_top)
    stream = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    stream.request("POST", "/v1/generate", json.dumps({"length": 2000, "lines": 1000, "stream": True, "seed": 1}))
    r = stream.getresponse()
    assert "char" in json.loads(r.readline())  # the sample is being drawn
    (status, score), = _at_once(port, [{"text": "HOME" * 50}])
    assert status == 500 and "FloatingPointError" in score["error"]
    events = [json.loads(line) for line in r.read().splitlines()]
    assert events[-1] == {"sample": 0, "error": "internal error: the engine failed: FloatingPointError: a step "
                                                "that fails"}
    assert failed and len(engine.batch) == 0 and len(engine.reads) == 0
    (status, gen), (_, again) = _at_once(port, [{"prime": "HOM", "length": 40, "seed": 5}], "/v1/generate") + \
        _at_once(port, [{"text": "HOME" * 50}])
    assert status == 200 and gen["samples"][0]["text"] == m.sample_batch(1, n=40, prime="HOM", seed=5)[0]
    assert again["nats_per_char"] == pytest.approx(m.score("HOME" * 50).nats_per_char, rel=1e-4, abs=1e-7)
    assert "the engine failed: FloatingPointError: a step that fails" in capfd.readouterr().err
