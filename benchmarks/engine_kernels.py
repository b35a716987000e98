"""Where the engine's update spends its time on one CPU thread, and what the alternatives cost.

1. **tanh.** The hidden activations' forward and backward on a ``[8, 256, 64]`` float32 tensor (one
   minibatch of the shipped example's 8 members): ``torch.tanh`` and its backward against
   ``2 sigmoid(2x) - 1`` with the backward ``g (1 - y^2)`` (what the engine's fused MLP,
   ``autorl.engine.nets._FusedMLP``, computes where it is differentiated), in microseconds per call,
   and the largest absolute difference; and a head's weight gradient (``[8, 256, 64]`` by ``[8, 256,
   2]``) as ``x^T g`` and as ``(g^T x)^T``.
2. **torch.compile.** The same tanh compiled, and one minibatch's loss and gradient
   (``Population._loss`` then ``torch.autograd.grad``) compiled, each with its compile time (the first
   call, with inductor's on-disk cache empty) and its time per call against the eager one.
3. **Freed memory.** Training at P = 32 in a fresh process with glibc's malloc defaults and in one
   after ``keep_freed_memory()`` (what every worker process calls): env steps per second and minor page
   faults per rollout, alternately ``--repeats`` times.
4. **A minibatch.** One minibatch's loss and gradient at P = 8 and 32 with the fused MLP and with
   autograd over plain ops, in microseconds, alternately ``--repeats`` times. And the heads: a layer
   of 1-64 outputs from ``[8, 256, 64]`` as ``baddbmm`` and as the transposed product, and the value
   head's input gradient as a matmul and as a broadcast (``--only-heads``: only these, in a second).
5. **Training.** Env steps per second of ``Population.train`` at P = 1 and 8 (the example's settings)
   and 32 (one shard of a 64-member population on two workers) with the engine's fused MLP and with
   autograd over plain ops (``torch.tanh``), measured alternately ``--repeats`` times in this process
   (which keeps freed memory, as a worker does); then, in a fresh
   process, P = 8 with ``compile=True``: the first rollout's time (the cold compile), the rate after it,
   and the env steps after which compiling has paid for itself.

    python benchmarks/engine_kernels.py --json docs/figures/engine_kernels.json   # about 4 minutes
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from autorl.engine import nets, ppo
from autorl.engine.config import EngineConfig
from autorl.engine.ppo import Population
from autorl.executors.process import keep_freed_memory

SETTINGS: dict[str, Any] = {"n_envs": 32, "n_steps": 32, "n_epochs": 4, "n_minibatches": 4}


def per_call_us(fn: Callable[[], Any], calls: int = 300) -> float:
    """Microseconds per call of ``fn``, after one warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def activations() -> dict[str, Any]:
    x = torch.randn(8, 256, 64)
    grad = torch.randn_like(x)
    xs = x.clone().requires_grad_(True)
    head = torch.randn(8, 256, 2)

    def sigmoid_form(z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(z * 2).mul_(2).sub_(1)

    def sigmoid_form_backward() -> torch.Tensor:  # the fused MLP's: forward, then g (1 - y^2) in place
        y = sigmoid_form(x)
        back = grad.clone()
        return back.addcmul_(back, y * y, value=-1)

    exact = torch.tanh(x.double())
    return {
        "torch_tanh_us": per_call_us(lambda: torch.tanh(x)),
        "engine_tanh_forward_us": per_call_us(lambda: sigmoid_form(x)),
        "torch_tanh_forward_backward_us": per_call_us(lambda: torch.autograd.grad(torch.tanh(xs), xs, grad)),
        "engine_tanh_forward_backward_us": per_call_us(sigmoid_form_backward),
        "sigmoid_us": per_call_us(lambda: torch.sigmoid(x)),
        "torch_tanh_max_abs_error": float((torch.tanh(x).double() - exact).abs().max()),
        "engine_tanh_max_abs_error": float((sigmoid_form(x).double() - exact).abs().max()),
        "head_weight_grad_xT_g_us": per_call_us(lambda: torch.bmm(x.transpose(1, 2), head)),
        "head_weight_grad_gT_x_T_us": per_call_us(lambda: torch.bmm(head.transpose(1, 2), x).transpose(1, 2)),
    }


def heads(repeats: int) -> dict[str, Any]:
    """A narrow layer from ``[8, 256, 64]`` (the update's heads: 1 output for the value, 2 for CartPole's
    logits) as ``baddbmm(b, x, W)`` and as the transposed product ``baddbmm(b^T, W^T, x^T)^T`` (what
    ``nets._head`` runs for at most ``nets._NARROW`` outputs), per output count; and the value head's
    input gradient as a matmul of inner size 1 and as a broadcast product. Alternately ``repeats``
    times, microseconds per call."""
    x = torch.randn(8, 256, 64)
    out: dict[str, Any] = {"outputs": {}}
    for n in (1, 2, 4, 8, 16, 64):
        w, b = torch.randn(8, 64, n), torch.randn(8, 1, n)
        row: dict[str, list[float]] = {"plain_us": [], "transposed_us": []}
        for _ in range(repeats):
            row["plain_us"].append(per_call_us(lambda w=w, b=b: torch.baddbmm(b, x, w)))
            row["transposed_us"].append(
                per_call_us(
                    lambda w=w, b=b: torch.baddbmm(b.transpose(1, 2), w.transpose(1, 2), x.transpose(1, 2))
                )
            )
        out["outputs"][str(n)] = row
    grad, weight = torch.randn(8, 256, 1), torch.randn(8, 1, 64)
    out["value_input_grad"] = {"matmul_us": [], "broadcast_us": []}
    for _ in range(repeats):
        out["value_input_grad"]["matmul_us"].append(per_call_us(lambda: torch.bmm(grad, weight)))
        out["value_input_grad"]["broadcast_us"].append(per_call_us(lambda: grad * weight))
    return out


_FRESH = """
import json, resource, sys, time
import torch
torch.set_num_threads(1)
if sys.argv[1] == "keep":
    from autorl.executors.process import keep_freed_memory
    keep_freed_memory()
from autorl.engine.config import EngineConfig
from autorl.engine.ppo import Population
settings = json.loads(sys.argv[2])
pop = Population(EngineConfig("CartPole-v1", **settings), [{}] * 32, seeds=range(32))
pop.train(4096)
faults, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
pop.train(1024 * 12)
seconds = time.perf_counter() - start
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
print(json.dumps({"steps_per_s": 32 * 1024 * 12 / seconds, "page_faults_per_rollout": faults / 12}))
"""


def freed_memory(repeats: int) -> dict[str, Any]:
    """Training at P = 32 in fresh processes with glibc's malloc defaults and with freed memory kept
    (as every worker keeps it), alternately ``repeats`` times."""
    out: dict[str, Any] = {}
    for _ in range(repeats):
        for mode in ("default", "keep"):
            child = [sys.executable, "-c", _FRESH, mode, json.dumps(SETTINGS)]
            result = json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout)
            out.setdefault(f"{mode}_steps_per_s", []).append(result["steps_per_s"])
            out.setdefault(f"{mode}_page_faults_per_rollout", []).append(result["page_faults_per_rollout"])
    return out


def _plain_mlp(layers: nets.Layers, x: torch.Tensor, activation: str, exact: bool = True) -> torch.Tensor:
    """The MLP as autograd over plain ops with ``torch.tanh`` everywhere (``exact`` is ignored): the
    naive batched MLP the fused one is measured against."""
    return nets._forward(layers, x, torch.tanh if activation == "tanh" else torch.relu)


def compiled() -> dict[str, Any]:
    x = torch.randn(8, 256, 64)
    start = time.perf_counter()
    fast = torch.compile(torch.tanh)
    fast(x)
    out: dict[str, Any] = {"tanh_compile_s": time.perf_counter() - start}
    out["tanh_compiled_us"] = per_call_us(lambda: fast(x))

    config = EngineConfig("CartPole-v1", **SETTINGS)
    pop = Population(config, [{"learning_rate": 1e-3}] * 8, seeds=range(8))
    k, n = 8, 256
    obs = torch.randn(k, n, 4)
    actions = torch.randint(0, 2, (k, n))
    old = torch.full((k, n), -0.69)
    adv, ret = torch.randn(k, n), torch.randn(k, n)
    coefs = (torch.full((k, 1), 0.2), torch.zeros(k), torch.full((k,), 0.5))

    def step(theta: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return pop._minibatch_grad(theta, obs, actions, old, adv, ret, *coefs)  # what compile=True compiles

    theta = pop.state_dict()["members"]["theta"]
    out["minibatch_eager_us"] = per_call_us(lambda: step(theta), 100)
    start = time.perf_counter()
    step_compiled = torch.compile(step)
    step_compiled(theta)
    out["minibatch_compile_s"] = time.perf_counter() - start
    out["minibatch_compiled_us"] = per_call_us(lambda: step_compiled(theta), 100)
    return out


def minibatch(repeats: int) -> list[dict[str, Any]]:
    """One minibatch's loss and gradient (``Population._minibatch_grad``, 256 samples per member) at
    P = 8 and 32, with the fused MLP and with autograd over plain ops, alternately ``repeats`` times."""
    rows = []
    for members in (8, 32):
        pop = Population(EngineConfig("CartPole-v1", **SETTINGS), [{}] * members, seeds=range(members))
        gen = torch.Generator().manual_seed(0)
        k, n = members, 256
        batch = (
            torch.randn(k, n, 4, generator=gen),
            torch.randint(0, 2, (k, n), generator=gen),
            torch.full((k, n), -0.69),
            torch.randn(k, n, generator=gen),
            torch.randn(k, n, generator=gen),
            torch.full((k, 1), 0.2),
            torch.zeros(k),
            torch.full((k,), 0.5),
        )
        theta = pop.state_dict()["members"]["theta"]
        step = functools.partial(pop._minibatch_grad, theta, *batch)
        times: dict[str, list[float]] = {"fused": [], "autograd": []}
        for _ in range(repeats):
            for mlp in times:
                ppo._mlp = nets._mlp if mlp == "fused" else _plain_mlp  # type: ignore[assignment]
                times[mlp].append(per_call_us(step, 100))
        ppo._mlp = nets._mlp  # type: ignore[assignment]
        fused, plain = statistics.median(times["fused"]), statistics.median(times["autograd"])
        rows.append(
            {
                "members": members,
                "fused_us": times["fused"],
                "autograd_us": times["autograd"],
                "ratio": fused / plain,
            }
        )
    return rows


def training(members: int, seconds: float, compile: bool = False) -> float:
    config = EngineConfig("CartPole-v1", **SETTINGS, compile=compile)
    pop = Population(config, [{"learning_rate": 1e-3}] * members, seeds=range(members))
    pop.train(4096)
    steps, elapsed = 0, 0.0
    while elapsed < seconds:
        start = time.perf_counter()
        pop.train(4096)
        elapsed += time.perf_counter() - start
        steps += members * 4096
    return steps / elapsed


def compiled_training(seconds: float) -> dict[str, Any]:
    """P = 8 with ``compile=True`` in this (fresh) process: the first rollout (the cold compile), then the
    rate."""
    config = EngineConfig("CartPole-v1", **SETTINGS, compile=True)
    pop = Population(config, [{"learning_rate": 1e-3}] * 8, seeds=range(8))
    start = time.perf_counter()
    pop.train(1024)  # one rollout: the compile happens here
    first = time.perf_counter() - start
    return {"members": 8, "first_rollout_s": first, "steps_per_s": training(8, seconds, compile=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="timed training per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="alternating measurements per row")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--only-heads", action="store_true", help="only the narrow layers' timings")
    parser.add_argument("--compiled-training", action="store_true", help=argparse.SUPPRESS)  # the child
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    # compile times are cold: inductor's on-disk cache starts empty (set before the first compile)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")
    if args.compiled_training:
        print(json.dumps(compiled_training(args.seconds)))
        return
    began = time.perf_counter()
    record: dict[str, Any] = {"torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
    if args.only_heads:
        keep_freed_memory()  # as every worker process does
        record["heads"] = _print_heads(heads(args.repeats))
        _write(record, began, args.json)
        return
    record["activations"] = acts = activations()
    for name, value in acts.items():
        print(f"{name:<34} {value:.3g}")
    record["freed_memory"] = freed = freed_memory(args.repeats)
    for name, values in freed.items():
        print(f"P = 32, {name}: " + " / ".join(f"{v:,.0f}" for v in values))
    keep_freed_memory()  # as every worker process does, before the training rows
    record["heads"] = _print_heads(heads(args.repeats))
    record["minibatch"] = mbs = minibatch(args.repeats)
    for row in mbs:
        print(
            f"minibatch P = {row['members']}: fused {statistics.median(row['fused_us']):,.0f} us, autograd "
            f"{statistics.median(row['autograd_us']):,.0f} us (median ratio {row['ratio']:.2f})"
        )
    rates: dict[tuple[int, str], list[float]] = {}
    for _ in range(args.repeats):  # alternating, so that a slow spell of the machine hits every row
        for members in (1, 8, 32):
            for mlp in ("fused", "autograd"):
                ppo._mlp = nets._mlp if mlp == "fused" else _plain_mlp  # type: ignore[assignment]
                rates.setdefault((members, mlp), []).append(training(members, args.seconds))
    ppo._mlp = nets._mlp  # type: ignore[assignment]
    rows: list[dict[str, Any]] = [
        {"members": p, "mlp": a, "steps_per_s": r, "median": statistics.median(r)}
        for (p, a), r in rates.items()
    ]
    for row in rows:
        runs = " / ".join(f"{x:,.0f}" for x in row["steps_per_s"])
        print(f"P = {row['members']}, {row['mlp']} MLP: {runs} env steps/s (median {row['median']:,.0f})")
    record["training"] = rows
    if not args.no_compile:
        record["compile"] = comp = compiled()
        for name, value in comp.items():
            print(f"{name:<34} {value:.3g}")
        child = [sys.executable, __file__, "--compiled-training", "--seconds", str(3 * args.seconds)]
        done = subprocess.run(child, check=True, capture_output=True, text=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        eager = next(r["median"] for r in rows if r["members"] == 8 and r["mlp"] == "fused")
        saved = 1 / eager - 1 / result["steps_per_s"]  # seconds per env step
        result["break_even_env_steps"] = result["first_rollout_s"] / saved if saved > 0 else None
        record["training_compiled"] = result
        print(
            f"P = 8, compile=True (a fresh process): first rollout {result['first_rollout_s']:.1f} s, then "
            f"{result['steps_per_s']:,.0f} env steps/s; pays for its compile after "
            + (f"{result['break_even_env_steps']:,.0f} env steps" if saved > 0 else "never")
        )
    _write(record, began, args.json)


def _print_heads(narrow: dict[str, Any]) -> dict[str, Any]:
    for n, row in narrow["outputs"].items():
        plain, transposed = statistics.median(row["plain_us"]), statistics.median(row["transposed_us"])
        print(f"{n:>2} outputs: baddbmm {plain:.0f} us, transposed {transposed:.0f} us (medians)")
    grads = narrow["value_input_grad"]
    print(
        f"value head's input gradient: matmul {statistics.median(grads['matmul_us']):.0f} us, broadcast "
        f"{statistics.median(grads['broadcast_us']):.0f} us (medians)"
    )
    return narrow


def _write(record: dict[str, Any], began: float, path: Path | None) -> None:
    record["wall_s"] = time.perf_counter() - began
    print(f"wall time {record['wall_s']:.0f} s")
    if path:
        record["command"] = "python benchmarks/engine_kernels.py " + " ".join(sys.argv[1:])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
