"""The Copilot's HTTP API (FastAPI). Start it with ``uvicorn --factory app.api:create_app`` (``scripts/dashboard.sh``
does); the OpenAPI docs are at ``/docs``. Every answer comes from :class:`app.service.Copilot`."""

from __future__ import annotations

import asyncio
import csv
import io
import signal
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.service import (
    MAX_UPLOAD_BYTES,
    Budget,
    BusyError,
    CancelledError,
    Copilot,
    CopilotError,
    Memory,
    NotFoundError,
    Scenario,
    job_dict,
)
from envs.sim.accelerators import ACCELERATORS
from envs.sim.bandwidth import LINKS
from envs.sim.step_time import DEFAULT_ACCELERATOR

Workload = Literal["transformer-train", "transformer-infer", "moe-infer", "cnn-train"]


class ScenarioModel(BaseModel):
    """A built-in workload at a size."""

    model_config = ConfigDict(extra="forbid")
    workload: Workload = "transformer-train"
    preset: str = "mistral-7b"
    layers: int | None = Field(4, ge=1, le=128)
    iterations: int | None = Field(2, ge=1, le=64, description="training steps or decode steps")
    batch: int | None = Field(None, ge=1, le=256)
    seed: int = Field(0, ge=0, lt=2**31)
    method: Literal["captured", "analytic"] = "captured"

    def to_scenario(self) -> Scenario:
        return Scenario(**self.model_dump())


class MemoryModel(BaseModel):
    """Exactly one of: GiB, bytes, or headroom (0 = the largest op's operands, 1 = the peak live bytes)."""

    model_config = ConfigDict(extra="forbid")
    gib: float | None = Field(None, gt=0, le=2**32, allow_inf_nan=False)
    bytes: int | None = Field(None, gt=0, le=2**62)
    headroom: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one(self) -> MemoryModel:
        if sum(x is not None for x in (self.gib, self.bytes, self.headroom)) != 1:
            raise ValueError("give exactly one of gib, bytes or headroom")
        return self

    def to_memory(self) -> Memory:
        return Memory(self.gib, self.bytes, self.headroom)


class TraceRef(BaseModel):
    """A trace already known to the server (``trace_id``) or a scenario to generate."""

    model_config = ConfigDict(extra="forbid")
    trace_id: str | None = None
    scenario: ScenarioModel | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TraceRef:
        if (self.trace_id is None) == (self.scenario is None):
            raise ValueError("give exactly one of trace_id or scenario")
        return self


class SimulateRequest(TraceRef):
    memory: MemoryModel = MemoryModel(headroom=0.3)
    strategies: list[str] = Field(default_factory=lambda: ["lru", "fifo", "next-use", "belady"], min_length=1, max_length=24)
    accelerator: Literal[tuple(ACCELERATORS)] = DEFAULT_ACCELERATOR  # type: ignore[valid-type]
    link: Literal[tuple(LINKS)] | None = Field(None, description="host link (default: the accelerator's)")  # type: ignore[valid-type]
    points: int = Field(100, ge=0, le=400, description="timeline snapshots per strategy (0: none)")


class CurveRequest(TraceRef):
    strategies: list[str] = Field(default_factory=lambda: ["lru", "belady", "lower-bound"], min_length=1, max_length=24)
    points: int = Field(8, ge=2, le=24)


def _one_line(exc: Exception) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def _stop_on_signals(copilot: Copilot) -> Callable[[], None]:
    """On SIGINT or SIGTERM, stops the copilot's running work at its next check, then hands the signal on to the
    server's own handler. The server waits for open requests before it shuts down; without this a request would
    compute on to the end of its budget. Returns what puts the previous handlers back (a no-op off the main thread,
    where signals cannot be handled, e.g. under a test client)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}

    def handler(sig: int, frame: Any) -> None:
        copilot.stop()
        before = previous[sig]
        if callable(before):
            before(sig, frame)
        else:  # default or ignored: behave as without this handler
            signal.signal(sig, before)
            signal.raise_signal(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, before in previous.items():
            signal.signal(sig, before)

    return restore


async def model_config_form(
    request: Request,
    file: Annotated[UploadFile | None, File(description="a Hugging Face config.json")] = None,
    example: Annotated[str | None, Query(description="or a bundled example (GET /model-configs)")] = None,
    task: Literal["train", "infer"] = "train",
    seq: Annotated[int, Query(ge=1, le=32768)] = 512,
    layers: Annotated[int | None, Query(ge=1, le=128)] = None,
    decode_steps: Annotated[int, Query(ge=1, le=64)] = 8,
) -> dict:
    """The options of tracing a Hugging Face config: the config's bytes and name, and the keyword arguments of
    :meth:`Copilot.add_model_config`."""
    if (file is None) == (example is None):
        raise HTTPException(422, "give exactly one of a config.json file or an example name")
    data = await file.read((1 << 20) + 1) if file is not None else request.app.state.copilot.example_config(example)
    return {"data": data, "name": example or "config.json", "task": task, "seq": seq, "layers": layers,
            "decode_steps": decode_steps}  # fmt: skip


def create_app(copilot: Copilot | None = None, warm: bool = True) -> FastAPI:
    """The FastAPI app over ``copilot`` (a new one by default); ``warm`` compiles the kernels at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if warm:
            svc: Copilot = app.state.copilot
            key = svc.add_scenario(Scenario())
            svc.simulate(key, Memory(headroom=0.3), ["lru", "fifo", "mru", "lfu", "random", "sieve", "next-use", "belady"])
        restore = _stop_on_signals(app.state.copilot)
        try:
            yield
        finally:
            restore()
            app.state.copilot.close()

    # the docs pages serve Swagger UI and ReDoc from the package, not a CDN: they work without internet
    about = "Which eviction policy moves the fewest bytes for this model and this memory size?"
    app = FastAPIOffline(title="TensorCache Copilot", version="1.0", lifespan=lifespan, description=about)
    app.state.copilot = copilot or Copilot()

    @app.exception_handler(CopilotError)
    async def _copilot_error(request: Request, exc: CopilotError) -> JSONResponse:
        if isinstance(exc, BusyError):
            return JSONResponse({"detail": _one_line(exc)}, status_code=429, headers={"Retry-After": "15"})
        if isinstance(exc, CancelledError):
            return JSONResponse({"detail": _one_line(exc)}, status_code=503)
        return JSONResponse({"detail": _one_line(exc)}, status_code=404 if isinstance(exc, NotFoundError) else 400)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        return JSONResponse({"detail": f"{where}: {err.get('msg')}" if where else str(err.get("msg"))}, status_code=422)

    def svc() -> Copilot:
        return app.state.copilot

    def trace_id(ref: TraceRef, budget: Budget | None = None) -> str:
        return ref.trace_id if ref.trace_id is not None else svc().add_scenario(ref.scenario.to_scenario(), budget)

    async def bounded(request: Request, work: Callable[[Budget], Any]) -> Any:
        """Runs ``work(budget)`` in a worker thread under a fresh request budget; when the client goes away the
        budget is cancelled, so the work stops at its next check instead of computing for nobody."""
        budget = svc().budget()
        task = asyncio.ensure_future(run_in_threadpool(work, budget))
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.25)
            if done:
                return task.result()
            if not budget.cancel.is_set() and await request.is_disconnected():
                budget.cancel.set()

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/workloads")
    def workloads() -> list[dict]:
        """Model families and their presets."""
        return svc().workloads()

    @app.get("/strategies")
    def strategies() -> list[dict]:
        """Every strategy: heuristics, offline references, the lower bound, learned agents (slow ones run as jobs)."""
        return svc().strategies()

    @app.get("/accelerators")
    def accelerators() -> list[dict]:
        """Accelerator presets for the step time: peak FLOP/s per dtype, memory bandwidth, host link."""
        return svc().accelerators()

    @app.get("/links")
    def links() -> list[dict]:
        """Host-accelerator link presets for transfer time."""
        return svc().links()

    @app.post("/traces")
    async def make_trace(scenario: ScenarioModel, request: Request) -> dict:
        """Generates (or finds cached) the trace of a scenario."""
        return await bounded(request, lambda b: svc().describe(svc().add_scenario(scenario.to_scenario(), b)))

    @app.post("/traces/upload")
    async def upload(file: Annotated[UploadFile, File(description="a trace: .npz, .csv or oracleGeneral .bin")]) -> dict:
        """Uploads a trace file (at most 64 MiB), or a Hugging Face config.json (traced for training, seq 512)."""
        data = await file.read(MAX_UPLOAD_BYTES + 1)
        return svc().describe(svc().add_upload(file.filename or "upload", data))

    @app.post("/traces/hf-config")
    async def model_config(request: Request, form: Annotated[dict, Depends(model_config_form)]) -> dict:
        """Your own model: a Hugging Face config.json traced without weights (training step or serving), then used
        like any trace."""
        key = await bounded(request, lambda b: svc().add_model_config(**form, budget=b))
        return svc().describe(key)

    @app.get("/model-configs")
    def model_configs() -> list[dict]:
        """Example Hugging Face configs, written from public model cards: name, source, parameters, blocks."""
        return svc().model_configs()

    @app.get("/traces/{trace_id}")
    def get_trace(trace_id: str) -> dict:
        return svc().describe(trace_id)

    @app.get("/traces/{trace_id}/stats")
    def trace_stats(trace_id: str) -> dict:
        """Validation statistics (reuse distance, entropy, locality, sizes)."""
        return svc().stats(trace_id)

    def run_simulation(req: SimulateRequest, points: int) -> Callable[[Budget], dict]:
        return lambda b: svc().simulate(trace_id(req, b), req.memory.to_memory(), req.strategies, req.link, points,
                                        accelerator=req.accelerator, budget=b)  # fmt: skip

    @app.post("/simulate")
    async def simulate(req: SimulateRequest, request: Request) -> dict:
        """Runs the strategies at one memory size: metrics, and per-strategy timelines and residency."""
        return await bounded(request, run_simulation(req, req.points))

    @app.post("/capacity-curve")
    async def capacity_curve(req: CurveRequest, request: Request) -> dict:
        """Bytes moved per byte requested against memory size for each strategy, with the lower bound."""
        return await bounded(request, lambda b: svc().capacity_curve(trace_id(req, b), req.strategies, req.points, budget=b))

    @app.post("/jobs", status_code=202)
    def submit(req: SimulateRequest) -> dict:
        """Starts a simulation in the background (for slow strategies such as the LLM); poll GET /jobs/{id}."""
        return {"id": svc().submit(trace_id(req), req.memory.to_memory(), req.strategies, req.link, req.accelerator)}

    @app.post("/jobs/trace", status_code=202)
    def submit_trace(scenario: ScenarioModel) -> dict:
        """Starts generating a scenario's trace in the background; GET /jobs/{id} tells its progress (accesses so
        far of the expected) and, when done, the trace (as GET /traces/{id}). A cached trace is done at once."""
        return {"id": svc().submit_scenario(scenario.to_scenario())}

    @app.post("/jobs/hf-config", status_code=202)
    def submit_model_config(form: Annotated[dict, Depends(model_config_form)]) -> dict:
        """Your own model, traced in the background (as POST /traces/hf-config); GET /jobs/{id} tells its progress:
        what is traced (task, sequence, decode steps, dtype, blocks) and the accesses so far of the expected."""
        return {"id": svc().submit_model_config(**form)}

    @app.post("/jobs/curve", status_code=202)
    def submit_curve(req: CurveRequest) -> dict:
        """Starts a capacity curve in the background (the bound solves one LP per point); poll GET /jobs/{id}."""
        return {"id": svc().submit_curve(trace_id(req), req.strategies, req.points)}

    @app.get("/jobs/{job_id}")
    def job(job_id: str) -> dict:
        return job_dict(svc().job(job_id))

    @app.delete("/jobs/{job_id}")
    def cancel_job(job_id: str) -> dict:
        """Cancels a job (the page does when its request changes): queued, it never starts; running, it stops."""
        return job_dict(svc().cancel(job_id))

    @app.post("/export/csv", response_class=PlainTextResponse)
    async def export_csv(req: SimulateRequest, request: Request) -> str:
        """The metrics table as CSV."""
        res = await bounded(request, run_simulation(req, 0))  # the runs of the page's /simulate, reused
        buf = io.StringIO()
        cols = ["strategy", "kind", "bytes_moved", "bytes_in", "bytes_out", "hit_ratio", "byte_hit_ratio", "transfer_s",
                "bytes_ratio_vs_lru", "step_s", "compute_s", "stall_s", "speedup_step_vs_lru", "score_vs_bound"]  # fmt: skip
        w = csv.DictWriter(buf, fieldnames=["trace_hash", "capacity_bytes", *cols], extrasaction="ignore")
        w.writeheader()
        for row in res["strategies"]:
            w.writerow({**row, "trace_hash": res["trace_hash"], "capacity_bytes": res["capacity_bytes"]})
        return buf.getvalue()

    @app.post("/export/report", response_class=HTMLResponse)
    async def export_report(req: SimulateRequest, request: Request) -> str:
        """A self-contained HTML report (tables and inline SVG figures) with the command that reproduces it."""
        from app.run_report import report_html

        res = await bounded(request, run_simulation(req, req.points))
        return report_html(res, svc().describe(res["trace_id"]))

    return app
