"""The models behind a local HTTP API (Starlette): each endpoint a thin layer over charrnn.Model.

    GET  /                      the page (page.html): generate, next-character bars, model card
    GET  /v1/models             the models served, one card each
    GET  /v1/models/{name}      one model's card and its loss history
    POST /v1/generate           samples; streamed as NDJSON or server-sent events, or whole
    POST /v1/probs              the k likeliest next characters after each character of a text
    POST /v1/score              nats/char, bits/char, perplexity; per character on request

Every error is JSON, {"error": "..."}, with its status: 400 (malformed JSON, a wrong type, an unknown
field), 404 (no such model or route), 405, 408 (a body that trickles in too slowly), 413 (a body over the
limit), 422 (a value out of range, a character outside the vocabulary with "unknown": "error"), 500 (the
engine failed a step: a stream ends with an "error" event; the next requests are served). A model's
generations and probs and score texts share its engine's network steps (charrnn.engine, charrnn.reading);
per-character scores and texts over charrnn.reading.MAX_SHARED characters run in worker threads, at most
as many at a time as the process has cores.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
from dataclasses import dataclass
from importlib import resources

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.routing import Route

from charrnn.alloc import keep_freed_memory
from charrnn.batch_sampling import Job, spawn_rngs
from charrnn.engine import Engine, EngineError, Whole
from charrnn.errors import CharRNNError
from charrnn.model import predictions
from charrnn.reading import fits
from charrnn.sample import Decoding, Stops
from charrnn.workers import available_cores

API_VERSION = "v1"


@dataclass
class Limits:
    """What one request may ask for."""

    max_body: int = 1_000_000  # bytes of a request body
    max_length: int = 2_000  # characters per sample
    max_samples: int = 64  # samples per generate request
    max_text: int = 200_000  # characters of a probs or score text
    body_seconds: float = 10.0  # the whole body must arrive within this


class Problem(Exception):
    """A request the server refuses: an HTTP status and a message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


NUMBER = (int, float)
# name: (accepted types, default); values are checked further by each endpoint
FIELDS = {
    "generate": {"model": (str, None), "prime": (str, ""), "length": (int, 200), "temperature": (NUMBER, 1.0),
                 "greedy": (bool, False), "top_k": (int, None), "top_p": (NUMBER, None), "seed": (int, None),
                 "stop": ((str, list), None), "lines": (int, None), "num_samples": (int, 1),
                 "stream": (bool, False), "format": (str, "ndjson"), "unknown": (str, "error")},
    "probs": {"model": (str, None), "text": (str, None), "k": (int, 5), "unknown": (str, "error")},
    "score": {"model": (str, None), "text": (str, None), "per_char": (bool, False), "unknown": (str, "skip")},
}


def fields(kind: str, body) -> dict:
    """The request's fields with defaults filled; 400 for a wrong type or an unknown field."""
    if not isinstance(body, dict):
        raise Problem(400, "the body must be a JSON object")
    spec = FIELDS[kind]
    unknown = sorted(set(body) - set(spec))
    if unknown:
        raise Problem(400, f"unknown field(s) {', '.join(unknown)}; known: {', '.join(spec)}")
    out = {}
    for name, (types, default) in spec.items():
        value = body.get(name, default)
        bad_bool = isinstance(value, bool) and types is not bool
        if value is not None and (bad_bool or not isinstance(value, types)):
            raise Problem(400, f"{name} must be {_type_name(types)}, not {json.dumps(value)}")
        if name == "stop" and isinstance(value, list) and not all(isinstance(s, str) and s for s in value):
            raise Problem(400, "stop must be a string or a list of non-empty strings")
        out[name] = value
    return out


def _type_name(types) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list"}
    return " or ".join(names[t] for t in (types if isinstance(types, tuple) else (types,)) if t in names)


def check(ok: bool, message: str) -> None:
    if not ok:
        raise Problem(422, message)


class Service:
    """The models served (name -> charrnn.Model), their engines, and the limits."""

    def __init__(self, models: dict, limits: Limits | None = None):
        self.models, self.limits = models, limits or Limits()
        keep_freed_memory()  # requests' arrays reuse freed pages instead of faulting in new ones
        self.engines = {name: Engine(m) for name, m in models.items()}  # generations, probs and score, stepped together
        self.limiter = CapacityLimiter(available_cores())  # per-character scores computing at once

    async def read(self, name: str, kind: str, text: str, k: int = 0):
        """Model.probs(text, k) or Model.score(text), by ``kind``: read by the engine, or alone if it does not fit."""
        m = self.models[name]
        if fits(kind, text):
            got = await asyncio.wrap_future(self.engines[name].read(kind, text))
            return predictions(m.vocab, text, got, k) if kind == "probs" else got
        return await (self.compute(m.probs, text, k) if kind == "probs" else self.compute(m.score, text))

    async def compute(self, fn, *args):
        """``fn(*args)`` in a worker thread, once one of the limiter's places is free."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    def model(self, name: str | None):
        """(name, Model): the one named, or the only one; 404 otherwise."""
        if name is None:
            if len(self.models) == 1:
                return next(iter(self.models.items()))
            raise Problem(422, f"several models are served; name one: {', '.join(self.models)}")
        if name not in self.models:
            raise Problem(404, f"no model named {name!r}; served: {', '.join(self.models)}")
        return name, self.models[name]

    def card(self, name: str, history: bool = False) -> dict:
        info = self.models[name].info.to_dict()
        info.pop("path", None)  # the server never tells where its files are
        info["parent"] = os.path.basename(info["parent"]) if info.get("parent") else None
        return {"name": name, **info, **({"history": self.models[name].history} if history else {})}

    def close(self) -> None:
        for engine in self.engines.values():
            engine.close()


async def read_json(request: Request, limits: Limits):
    """The request's JSON body: 413 over the size limit, 408 if it comes too slowly, 400 if it is not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body:
        raise Problem(413, f"the body is {int(declared):,} bytes; the limit is {limits.max_body:,}")

    async def whole() -> bytes:
        data = bytearray()
        async for piece in request.stream():
            data += piece
            if len(data) > limits.max_body:
                raise Problem(413, f"the body is over the limit of {limits.max_body:,} bytes")
        return bytes(data)
    try:
        raw = await asyncio.wait_for(whole(), timeout=limits.body_seconds)
    except asyncio.TimeoutError:
        raise Problem(408, f"the body did not arrive within {limits.body_seconds:g} s") from None
    try:
        return json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, ValueError) as e:
        raise Problem(400, f"the body is not JSON ({str(e)[:80]})") from None


def _fitted(m, text: str, unknown: str) -> tuple[str, dict]:  # 422 for a character outside the vocabulary
    try:
        return m.fit(text, unknown)
    except CharRNNError as e:
        raise Problem(422, str(e)) from None


def generation(service: Service, f: dict):
    """(name, model, jobs) of a generate request, every value checked."""
    name, m = service.model(f["model"])
    lim = service.limits
    check(1 <= f["length"] <= lim.max_length, f"length must be between 1 and {lim.max_length}, not {f['length']}")
    check(1 <= f["num_samples"] <= lim.max_samples,
          f"num_samples must be between 1 and {lim.max_samples}, not {f['num_samples']}")
    check(f["temperature"] > 0, f"temperature must be above 0 (for the likeliest characters, send \"greedy\": true), "
                                f"not {f['temperature']}")
    check(f["top_p"] is None or 0 < f["top_p"] <= 1, f"top_p must be in (0, 1], not {f['top_p']}")
    for key, least in (("top_k", 1), ("lines", 1), ("seed", 0)):
        check(f[key] is None or f[key] >= least, f"{key} must be {least} or more, not {f[key]}")
    check(f["format"] in ("ndjson", "sse"), f"format must be ndjson or sse, not {f['format']!r}")
    prime, _ = _fitted(m, f["prime"], f["unknown"])
    strings = [f["stop"]] if isinstance(f["stop"], str) else (f["stop"] or [])
    check(all(strings), "stop strings must not be empty")
    lines = 1 if m.records and f["lines"] is None and not strings else f["lines"]
    stops = Stops(length=f["length"], strings=strings, lines=lines)
    decoding = Decoding(0.0 if f["greedy"] else float(f["temperature"]), f["top_k"], f["top_p"])
    rngs = spawn_rngs(f["seed"], f["num_samples"])
    jobs = [Job(prime, decoding, stops, rng, key=i, details=f["stream"]) for i, rng in enumerate(rngs)]
    return name, m, jobs


class Api:
    """The endpoints, each a thin layer over a charrnn.Model method of the models ``service`` holds."""

    def __init__(self, service: Service):
        self.service = service
        self.page = resources.files("charrnn").joinpath("page.html").read_text(encoding="utf-8")

    def routes(self) -> list:
        v = API_VERSION
        return [Route("/", self.index), Route(f"/{v}/models", self.models), Route(f"/{v}/models/{{name}}", self.model),
                Route(f"/{v}/generate", self.generate, methods=["POST"]),
                Route(f"/{v}/probs", self.probs, methods=["POST"]), Route(f"/{v}/score", self.score, methods=["POST"])]

    async def index(self, request):
        return HTMLResponse(self.page)

    async def models(self, request):
        return JSONResponse({"version": API_VERSION, "models": [self.service.card(n) for n in self.service.models]})

    async def model(self, request):
        name, _ = self.service.model(request.path_params["name"])
        return JSONResponse(self.service.card(name, history=True))

    async def generate(self, request):
        f = fields("generate", await read_json(request, self.service.limits))
        name, m, jobs = generation(self.service, f)
        engine, loop = self.service.engines[name], asyncio.get_running_loop()
        if f["stream"]:
            queue = asyncio.Queue()
            request_id = engine.submit(jobs, lambda drawn: loop.call_soon_threadsafe(queue.put_nowait, drawn))
            return StreamingResponse(_stream(engine, request_id, queue, len(jobs), f["format"]),
                                     media_type="text/event-stream" if f["format"] == "sse" else "application/x-ndjson")
        whole = Whole(len(jobs), loop)
        request_id = engine.submit(jobs, whole.take)
        try:
            await whole.finished
        finally:
            engine.cancel(request_id)
        return JSONResponse({"model": name, "prime": f["prime"], "samples": [
            {"text": "".join(t), "nats": n, "chars": len(t)} for t, n in zip(whole.texts, whole.nats)]})

    async def probs(self, request):
        f = fields("probs", await read_json(request, self.service.limits))
        name, m = self.service.model(f["model"])
        check(f["text"] is not None and 1 <= len(f["text"]) <= self.service.limits.max_text,
              f"text must have 1 to {self.service.limits.max_text:,} characters")
        check(1 <= f["k"] <= len(m.vocab), f"k must be between 1 and {len(m.vocab)}, not {f['k']}")
        text, unknown = _fitted(m, f["text"], f["unknown"])
        check(len(text) >= 1, "no character of the text is in the model's vocabulary")
        rows = await self.service.read(name, "probs", text, f["k"])
        return JSONResponse({"model": name, "text": text, "unknown": unknown, "predictions": [
            {"index": r.index, "char": r.char, "entropy_bits": r.entropy_bits,
             "next": [{"char": c, "p": p} for c, p in r.next]} for r in rows]})

    async def score(self, request):
        f = fields("score", await read_json(request, self.service.limits))
        name, m = self.service.model(f["model"])
        check(f["text"] is not None and len(f["text"]) <= self.service.limits.max_text,
              f"text must have at most {self.service.limits.max_text:,} characters")
        text, unknown = _fitted(m, f["text"], f["unknown"])
        try:
            result = await self.service.read(name, "score", text)
            per = await self.service.compute(m.per_char, text) if f["per_char"] else None
        except CharRNNError as e:
            raise Problem(422, str(e)) from None
        out = {"model": name, **result.to_dict(), "unknown_chars": sum(unknown.values()), "unknown": unknown}
        if per is not None:
            out["per_char"] = [{"char": c, "nats": float(n), "p_top": float(t)}
                               for c, n, t in zip(per.chars, per.nats, per.p_top)]
        return JSONResponse(out)


async def _stream(engine: Engine, request_id: int, queue: asyncio.Queue, samples: int, form: str):
    """Each character as one JSON line (or server-sent event) as it is drawn; the request's jobs go when it does."""
    left, texts = samples, [[] for _ in range(samples)]
    try:
        while left:
            d = await queue.get()
            texts[d.sample].append(d.char)
            event = {"sample": d.sample, "char": d.char, "p": d.p, "top": d.top}
            if d.failed:  # the engine's step failed: the stream ends with its error
                event, left = {"sample": d.sample, "error": f"internal error: {d.failed}"}, 0
            elif d.done:
                event["done"], event["text"] = True, "".join(texts[d.sample])
                left -= 1
            line = json.dumps(event, ensure_ascii=False)
            yield f"data: {line}\n\n" if form == "sse" else line + "\n"
    finally:  # finished, or the client went away: either way nothing more is drawn for it
        engine.cancel(request_id)


def create_app(models: dict, limits: Limits | None = None) -> Starlette:
    """The ASGI app serving ``models`` ({name: charrnn.Model})."""
    service = Service(models, limits)

    async def problem(request, exc: Problem):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    async def http_error(request, exc: HTTPException):
        message = {404: "no such route", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
        return JSONResponse({"error": message}, status_code=exc.status_code)

    async def crash(request, exc: Exception):
        what = exc if isinstance(exc, EngineError) else type(exc).__name__  # an engine's says which step failed
        return JSONResponse({"error": f"internal error: {what}"}, status_code=500)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        service.close()

    app = Starlette(routes=Api(service).routes(), lifespan=lifespan,
                    exception_handlers={Problem: problem, HTTPException: http_error, Exception: crash})
    app.state.service = service
    return app
