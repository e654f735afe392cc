"""K-NEXUS class selection (Mask2Mesh, section 3.1) and the random baseline.

K-NEXUS: cluster the class-mean embeddings into K groups with seeded k-means++ (several
restarts, the lowest inertia wins) and keep from each cluster the class with the most videos.
Ties go to the class closest to the cluster centre, then to the alphabetically first name, so
the result is a pure function of (embeddings, counts, K, seed, restarts).
The embeddings are unit vectors, so Euclidean k-means groups by cosine similarity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from privvid.curate.sources import CurationError

METHODS = ("knexus", "random")


@dataclass
class Selection:
    method: str
    k: int
    seed: int
    selected: list[str]                              # in cluster order (knexus) or sorted (random)
    clusters: list[dict[str, Any]] = field(default_factory=list)
    inertia: float | None = None
    restarts: int | None = None


def check_k(k: int, n_classes: int) -> None:
    if k < 1:
        raise CurationError(f"--k must be at least 1, got {k}")
    if k > n_classes:
        raise CurationError(f"--k {k} is larger than the number of classes ({n_classes}); "
                            f"choose K <= {n_classes}")


def kmeans(vectors: np.ndarray, k: int, seed: int, restarts: int = 10, max_iter: int = 300) -> tuple[np.ndarray, np.ndarray, float]:
    """Seeded k-means++ with ``restarts`` initialisations (sklearn Lloyd). Returns labels,
    centres and inertia. K equal to the number of points gives every point its own cluster."""
    from sklearn.cluster import KMeans

    n = len(vectors)
    check_k(k, n)
    if k == n:
        return np.arange(n), vectors.astype(np.float64).copy(), 0.0
    model = KMeans(n_clusters=k, init="k-means++", n_init=restarts, max_iter=max_iter,
                   random_state=seed, algorithm="lloyd")
    labels = model.fit_predict(vectors.astype(np.float64))
    return labels, model.cluster_centers_, float(model.inertia_)


def knexus_select(labels: list[str], vectors: np.ndarray, counts: dict[str, int], k: int,
                  seed: int = 0, restarts: int = 10) -> Selection:
    assignment, centres, inertia = kmeans(vectors, k, seed, restarts)
    # k-means can leave a cluster empty only in degenerate cases (duplicate points); sklearn
    # relocates empty clusters, so each of the K ids has members here
    clusters = []
    for cluster in range(k):
        members = np.flatnonzero(assignment == cluster)
        if len(members) == 0:
            raise CurationError(
                f"k-means left cluster {cluster} empty (too many identical class embeddings for K={k})"
            )
        dist = np.linalg.norm(vectors[members] - centres[cluster], axis=1)
        order = sorted(range(len(members)),
                       key=lambda i: (-counts.get(labels[members[i]], 0), round(float(dist[i]), 9),
                                      labels[members[i]]))
        chosen = labels[members[order[0]]]
        clusters.append({
            "members": sorted(labels[m] for m in members),
            "selected": chosen,
            "counts": {labels[m]: int(counts.get(labels[m], 0)) for m in sorted(members, key=lambda m: labels[m])},
        })
    # stable cluster order: by selected name (k-means ids depend on initialisation details)
    clusters.sort(key=lambda c: c["selected"])
    for index, cluster in enumerate(clusters):
        cluster["id"] = index
    selected = [c["selected"] for c in clusters]
    if len(set(selected)) != k:
        raise AssertionError("a class was selected twice")  # impossible: clusters are disjoint
    return Selection("knexus", k, seed, selected, clusters, inertia, restarts)


def random_select(labels: list[str], k: int, seed: int = 0) -> Selection:
    check_k(k, len(labels))
    rng = np.random.default_rng(seed)
    chosen = sorted(labels[i] for i in rng.choice(len(labels), size=k, replace=False))
    return Selection("random", k, seed, chosen)


# --- separation report ---------------------------------------------------------------------

def nn_similarities(vectors: np.ndarray) -> np.ndarray:
    """For each vector, the cosine similarity to its nearest other vector in the set."""
    if len(vectors) < 2:
        return np.zeros(len(vectors))
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    return sim.max(axis=1)


def separation_metrics(all_vectors: np.ndarray, index: np.ndarray) -> dict[str, float]:
    """How distinct the chosen classes are (lower similarity = more separated), and how well
    they cover the full label set (mean over all classes of the best similarity to a chosen one)."""
    chosen = all_vectors[index]
    nn = nn_similarities(chosen)
    unit = all_vectors / np.maximum(np.linalg.norm(all_vectors, axis=1, keepdims=True), 1e-12)
    cunit = unit[index]
    sim = cunit @ cunit.T
    k = len(index)
    off = sim[~np.eye(k, dtype=bool)] if k > 1 else np.zeros(1)
    coverage = (unit @ cunit.T).max(axis=1)
    return {
        "mean_nn_similarity": float(nn.mean()),
        "max_pair_similarity": float(off.max()),
        "mean_pair_similarity": float(off.mean()),
        "coverage_similarity": float(coverage.mean()),
    }


METRIC_NOTES = {
    "mean_nn_similarity": "mean cosine similarity of each selected class to its nearest selected class (lower = more distinct)",
    "max_pair_similarity": "the most similar pair among the selected classes (lower = no near-duplicates)",
    "mean_pair_similarity": "mean cosine similarity over all selected pairs",
    "coverage_similarity": "mean over ALL classes of the similarity to the closest selected class (higher = better coverage)",
}


def separation_report(labels: list[str], vectors: np.ndarray, selection: Selection,
                      random_draws: int = 100, seed: int = 0) -> dict[str, Any]:
    """Metrics of ``selection`` next to ``random_draws`` random selections of the same K."""
    lookup = {label: i for i, label in enumerate(labels)}
    index = np.array([lookup[s] for s in selection.selected])
    chosen = separation_metrics(vectors, index)
    rng = np.random.default_rng(seed + 7919)
    draws = [separation_metrics(vectors, rng.choice(len(labels), size=selection.k, replace=False))
             for _ in range(random_draws)]
    table = {}
    for name, value in chosen.items():
        values = np.array([d[name] for d in draws])
        better_low = name != "coverage_similarity"
        share = float(np.mean(values <= value)) if better_low else float(np.mean(values >= value))
        table[name] = {
            "selected": value,
            "random_mean": float(values.mean()),
            "random_std": float(values.std()),
            # share of random draws at least as good as the selection (small = selection is better)
            "random_at_least_as_good": share,
            "lower_is_better": better_low,
        }
    example = np.random.default_rng(seed).choice(len(labels), size=selection.k, replace=False)
    return {
        "k": selection.k,
        "classes": len(labels),
        "method": selection.method,
        "random_draws": random_draws,
        "metrics": table,
        "notes": METRIC_NOTES,
        "nn_selected": nn_similarities(vectors[index]).tolist(),
        "nn_random_example": nn_similarities(vectors[example]).tolist(),
    }


def plot_separation(report: dict[str, Any], path) -> None:
    """Histogram of nearest-neighbour similarities: selection vs one random draw of the same K."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    sel, rnd = np.array(report["nn_selected"]), np.array(report["nn_random_example"])
    lo = float(min(sel.min(), rnd.min())) if len(sel) and len(rnd) else 0.0
    hi = float(max(sel.max(), rnd.max())) if len(sel) and len(rnd) else 1.0
    bins = np.linspace(lo - 1e-6, hi + 1e-6, 25)
    ax.hist(rnd, bins=bins, alpha=0.55, label="random selection (one draw)", color="tab:gray")
    ax.hist(sel, bins=bins, alpha=0.65, label=f"{report['method']} selection", color="tab:blue")
    metric = report["metrics"]["mean_nn_similarity"]
    ax.axvline(metric["selected"], color="tab:blue", linestyle="--", linewidth=1,
               label=f"{report['method']} mean")
    ax.axvline(metric["random_mean"], color="black", linestyle=":", linewidth=1,
               label=f"random mean over {report['random_draws']} draws")
    ax.set_xlabel("cosine similarity to the nearest other selected class")
    ax.set_ylabel("classes")
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))   # counts of classes
    ax.set_title(f"K={report['k']} of {report['classes']} classes: separation")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
