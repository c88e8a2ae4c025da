"""How fast the local provider decodes, against what this machine's memory allows.

Decoding one token of a small LLM reads every weight once, so its speed is bounded by
memory bandwidth: bound (tokens/s) = bandwidth / weight bytes read per token. This
script measures, in one run:

* memory bandwidth, three ways, median of 5: a NumPy copy of a 1 GiB array (1 thread;
  bytes read + bytes written per second), a torch sum over 1 GiB of float32 and a torch
  matrix-vector product over a 1 GiB float32 matrix (torch's threads; bytes read per
  second). The bound uses the highest, so it is not flattered;
* for the packaged SmolLM2-135M-Instruct (Q4_1 GGUF), through the provider's own
  ``stream`` (greedy, a fixed prompt, 64 new tokens): time to first token and decode
  tokens/s after the first token, median of ``--runs``, for transformers float32 and
  bfloat16 and, when ``llama_cpp`` is importable (from benchmarks/.gen-peers too),
  llama.cpp;
* weight bytes per token: parameter count x bytes per element of the dtype the
  weights are held in (transformers de-quantizes the GGUF), and the GGUF's quantized
  tensor bytes for llama.cpp; and each decode rate as a % of its bound.

llama-cpp-python is never a Stoa dependency; install it for this script only with
``.venv/bin/pip install --target benchmarks/.gen-peers llama-cpp-python``.

Usage: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/generation.py [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PEERS = Path(__file__).resolve().parent / ".gen-peers"
if PEERS.is_dir():
    sys.path.append(str(PEERS))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

PROMPT = "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle."
NEW_TOKENS = 64
GIB = 1 << 30


def _median_seconds(fn: Callable[[], Any], repeats: int = 5) -> float:
    fn()  # warm: page faults and first-touch are not bandwidth
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bandwidth() -> dict[str, float]:
    """GB/s (1e9 bytes) a NumPy copy and a torch reduction reach over 1 GiB."""
    import torch

    src = np.ones(GIB // 8, dtype=np.float64)
    dst = np.empty_like(src)
    copy = 2 * GIB / _median_seconds(lambda: np.copyto(dst, src)) / 1e9
    tensor = torch.ones(GIB // 4, dtype=torch.float32)
    read = GIB / _median_seconds(lambda: tensor.sum()) / 1e9
    # The decode step's own access pattern: a matrix-vector product over 1 GiB of weights.
    matrix, vector = tensor.view(-1, 4096), torch.ones(4096)
    gemv = GIB / _median_seconds(lambda: torch.mv(matrix, vector)) / 1e9
    return {"numpy_copy_gbs": copy, "torch_read_gbs": read, "torch_gemv_gbs": gemv,
            "bound_gbs": max(copy, read, gemv)}  # fmt: skip


def _measure(provider: Any, runs: int) -> dict[str, float]:
    from stoa.develop.llm.provider import GenerationParams, Message

    messages = [Message(role="user", content=PROMPT)]
    params = GenerationParams(max_tokens=NEW_TOKENS, temperature=0.0)
    rates, ttfts, counts = [], [], []
    for i in range(runs + 1):
        start = time.perf_counter()
        first = None
        for chunk in provider.stream(messages, params):
            if chunk.final is not None:
                end = time.perf_counter()
                usage = chunk.final.usage
            elif first is None:
                first = time.perf_counter()
        tokens = usage.completion_tokens
        if i == 0:
            continue  # warm-up: allocator, thread pool, caches
        # Decode rate after the first token (TTFT is reported on its own).
        rates.append((tokens - 1) / (end - (first or start)))
        ttfts.append(usage.first_token_ms or 0.0)
        counts.append(tokens)
    return {
        "decode_tok_s": statistics.median(rates),
        "ttft_ms": statistics.median(ttfts),
        "new_tokens": statistics.median(counts),
        "runs": runs,
    }


def transformers_case(dtype: str, runs: int) -> dict[str, Any]:
    from stoa.develop.llm.local import LocalProvider, packaged_gguf
    from stoa.govern.flavors.causal_lm_flavor import CausalLMFlavor

    start = time.perf_counter()
    lm = CausalLMFlavor().load(packaged_gguf(), {}, dtype=dtype)
    load_s = time.perf_counter() - start
    params = {id(p): p for p in lm.model.parameters()}  # tied weights counted once
    weight_bytes = sum(p.numel() * p.element_size() for p in params.values())
    result = _measure(LocalProvider(lm, model="smollm2"), runs)
    return {"backend": "transformers", "dtype": dtype, "load_s": load_s,
            "weight_bytes": weight_bytes, **result}  # fmt: skip


def llama_cpp_case(runs: int) -> dict[str, Any] | None:
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    from stoa.develop.llm.local import LlamaCppProvider, packaged_gguf
    from stoa.govern.flavors.causal_lm_flavor import gguf_metadata

    path = packaged_gguf()
    start = time.perf_counter()
    llm = Llama(model_path=str(path), n_ctx=2048, n_threads=os.cpu_count(), verbose=False)
    load_s = time.perf_counter() - start
    meta = gguf_metadata(path) or {}
    # The embedding matrix is tied to the output: decoding reads it whole once per token.
    result = _measure(LlamaCppProvider(llm, model="smollm2"), runs)
    return {"backend": "llama.cpp", "dtype": "Q4_1 (GGUF)", "load_s": load_s,
            "weight_bytes": meta.get("weight_bytes", 0), **result}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per case (median)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--skip", nargs="*", default=[], help="cases to leave out: "
                        "float32 bfloat16 llama.cpp")  # fmt: skip
    args = parser.parse_args()
    import torch

    bw = bandwidth()
    cases = [transformers_case(d, args.runs) for d in ("float32", "bfloat16") if d not in args.skip]
    if "llama.cpp" not in args.skip:
        found = llama_cpp_case(args.runs)
        if found is not None:
            cases.append(found)
    for case in cases:
        case["bound_tok_s"] = bw["bound_gbs"] * 1e9 / case["weight_bytes"]
        case["pct_of_bound"] = 100 * case["decode_tok_s"] / case["bound_tok_s"]
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0],
    }
    if args.json:
        print(json.dumps({"machine": machine, "bandwidth": bw, "cases": cases}, indent=2))
        return
    print(f"machine: {machine}")
    print(f"bandwidth: numpy copy {bw['numpy_copy_gbs']:.1f} GB/s, torch sum "
          f"{bw['torch_read_gbs']:.1f} GB/s, torch gemv {bw['torch_gemv_gbs']:.1f} GB/s; "
          f"the bound uses {bw['bound_gbs']:.1f}")  # fmt: skip
    print(f"{'backend':<13}{'dtype':<13}{'weights MB':>11}{'load s':>8}{'TTFT ms':>9}"
          f"{'tok/s':>8}{'bound':>8}{'% bound':>9}")  # fmt: skip
    for c in cases:
        print(f"{c['backend']:<13}{c['dtype']:<13}{c['weight_bytes'] / 1e6:>11.1f}"
              f"{c['load_s']:>8.1f}{c['ttft_ms']:>9.0f}{c['decode_tok_s']:>8.1f}"
              f"{c['bound_tok_s']:>8.1f}{c['pct_of_bound']:>8.0f}%")  # fmt: skip


if __name__ == "__main__":
    main()
