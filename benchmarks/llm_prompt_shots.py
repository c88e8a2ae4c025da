"""Few-shot settings of the llm_prompt candidate on the demo tickets: f1_macro with its
bootstrap interval, prompt tokens and seconds per row, on one seeded sample of the demo's
test split, with the packaged SmolLM2-135M through the local provider.

    .venv/bin/python benchmarks/llm_prompt_shots.py ROWS SHOTS:SELECTION ...
    .venv/bin/python benchmarks/llm_prompt_shots.py 24 0:fixed 1:fixed 1:similar 2:similar
"""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from stoa.client import LocalClient
from stoa.core.settings import Settings
from stoa.demo.synthetic_data import write_demo_data
from stoa.develop.llm.local import packaged_gguf
from stoa.develop.llm.providers import load_provider
from stoa.develop.ml import evaluate as ev
from stoa.develop.ml.candidates.base import make
from stoa.develop.ml.data import DataSpec, prepare, read_table, split

n = int(sys.argv[1])
configs = [tuple(c.split(":")) for c in sys.argv[2:]]
home = Path(tempfile.mkdtemp())
files = write_demo_data(home / "w")
spec = DataSpec(target="intent", path=files["tickets"], text="body", test_size=0.2, seed=7)
data = prepare(read_table(files["tickets"]), spec, "t", None)
parts = split(data, spec)
c = LocalClient(settings=Settings(home=home / "h"), actor="me")
info = c.models.register("smollm2", packaged_gguf(), license="Apache-2.0")
c.models.set_alias("smollm2", info.version, "champion")


def loader(provider_spec):
    return load_provider(provider_spec, registry=c.stores.registry, settings=c.stores.settings)


rows = np.sort(np.random.default_rng(7).permutation(len(parts.y_test))[:n])
x, y = parts.x_test.take(rows), parts.y_test[rows]
for shots, sel in configs:
    cand = make(
        "llm_prompt", "classification", {"shots": int(shots), "shot_selection": sel}, seed=7
    )
    cand.bind(loader)
    cand.fit(parts.x_train, parts.y_train)
    toks = np.mean([len(cand._provider.prompt_ids(cand.messages(t))) for t in x.texts[:5]])
    t0, c0 = time.perf_counter(), time.process_time()
    pred, proba = cand.predict_with_proba(x)
    wall, cpu = (time.perf_counter() - t0) / n, (time.process_time() - c0) / n
    q = ev.evaluate(
        "classification", y, pred, proba, cand.classes_, "f1_macro", resamples=500, seed=7
    )
    ci = q["interval"]
    print(
        f"shots={shots} {sel:8s} n={n} f1_macro={q['metrics']['f1_macro']:.3f} "
        f"CI {ci['low']:.3f}-{ci['high']:.3f} acc={q['metrics']['accuracy']:.3f} "
        f"prompt_tokens~{toks:.0f} s/row={wall:.2f} cpu_s/row={cpu:.2f} "
        f"USD/1k@0.05={cpu * 1000 * 0.05 / 3600:.2e}",
        flush=True,
    )
