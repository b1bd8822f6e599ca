"""Search latency of the sound index and of the HTTP service; prints tables.

    python benchmarks/serve_latency.py index [--sizes 1000,5000,...] [--queries 300] [--nprobes 8,16,32]
        exact vs IVF search by library size: p50/p95 latency of one query, IVF recall@10 against exact search
        for several nprobe, IVF build time, file sizes (--hnsw: HNSW too). This is where the exact/approximate
        switch point (clapkit.index.vectors.APPROXIMATE_FROM) comes from.
    python benchmarks/serve_latency.py http [--size 100000] [--requests 300] [--concurrency 1,4] [--max-seconds 60]
        a bounded load test of `clapkit serve` on loopback (127.0.0.1, an ephemeral port) over a 100,000-vector
        index, exact and approximate: p50/p95/p99 latency per endpoint.

Data: synthetic L2-normalised 512-d vectors, not random uniform ones (on those no approximate index works, and no
real library looks like them) but clustered like a sound library, in two ways:
- "grouped": 40 broad groups (random unit vectors) of 50 kinds of sound each; a kind's centre is its group's vector
  plus a random unit vector, normalised (sibling kinds: cosine about 0.5);
- "flat": 2,000 unrelated kinds (random unit centres), the hard case for an inverted file: a small library then has
  only a few sounds of each kind and no larger structure for the cells to follow.
A sound is its kind's centre plus Gaussian noise of the same norm, normalised (cosine to its centre about 0.7, to a
sound of the same kind about 0.5). Two query sets: "audio" (new draws of the same distribution: query by example)
and "text" (the same shifted by a fixed random vector of norm 1, then normalised: CLAP's text embeddings sit apart
from the audio ones, the modality gap, which makes queries out of distribution for an approximate index).
The HTTP test sends real text queries through a randomly initialised HTSAT-tiny + 2-layer BERT model (512-d
joint space): its text tower is small, so the numbers are the service's and the index's, plus ~2 ms of text tower.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

DIM = 512
GROUPS, KINDS_PER_GROUP = 40, 50


def library(count: int, seed: int, centres: np.ndarray, shift: np.ndarray | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((count, centres.shape[1]), np.float32)
    for start in range(0, count, 50_000):
        n = min(50_000, count - start)
        block = centres[rng.integers(0, len(centres), n)] + rng.standard_normal((n, centres.shape[1])).astype(
            np.float32
        ) / np.sqrt(centres.shape[1])
        if shift is not None:
            block += shift
        out[start : start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def unit_vectors(count: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def kind_centres(seed: int = 0) -> np.ndarray:
    """2,000 centres of kinds of sound in 40 groups (see the module docstring)."""
    groups = np.repeat(unit_vectors(GROUPS, DIM, seed), KINDS_PER_GROUP, axis=0)
    centres = groups + unit_vectors(GROUPS * KINDS_PER_GROUP, DIM, seed + 1)
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


def percentiles(seconds: list[float]) -> tuple[float, float, float]:
    ms = np.asarray(seconds) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95)), float(np.percentile(ms, 99))


def print_table(header: list[str], rows: list[list]) -> None:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for i, row in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()


# ------------------------------------------------------------------------------------------------- index sweep
def time_queries(vector_index, queries: np.ndarray, k: int = 10) -> tuple[list[float], np.ndarray]:
    latencies, found = [], []
    for q in queries:
        started = time.perf_counter()
        hits = vector_index.search(q, k)
        latencies.append(time.perf_counter() - started)
        found.append(hits.ids[0])
    return latencies, np.stack(found)


class HnswForComparison:
    """FAISS's HNSW (M 32, efConstruction 40), searched like a VectorIndex: only to compare with IVF."""

    def __init__(self, vectors: np.ndarray, ef_search: int):
        import faiss

        self.index = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = 40
        self.index.add(vectors)
        self.index.hnsw.efSearch = ef_search

    def search(self, query: np.ndarray, k: int):
        from clapkit.index.vectors import SearchHits

        scores, ids = self.index.search(query.reshape(1, -1), k)
        return SearchHits(ids=ids, scores=scores)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def run_index_sweep(args: argparse.Namespace) -> None:
    import faiss

    from clapkit.index.vectors import DEFAULT_NPROBE, VectorIndex, nlist_for

    datasets = {"grouped": kind_centres(), "flat": unit_vectors(GROUPS * KINDS_PER_GROUP, DIM, 0)}
    shift = unit_vectors(1, DIM, 7)[0]
    threads = faiss.omp_get_max_threads()
    header = ["vectors", "data", "queries", "exact p50 ms", "exact p95 ms", "nlist", "nprobe", "IVF recall@10",
              "IVF p50 ms", "IVF p95 ms", "IVF build s", "exact MiB", "IVF MiB"]  # fmt: skip
    for size in (int(s) for s in args.sizes.split(",")):
        rows = []
        for data, centres in datasets.items():
            vectors = library(size, 4, centres)
            ids = np.arange(size, dtype=np.int64)
            faiss.omp_set_num_threads(threads)
            exact = VectorIndex.build(ids, vectors, "exact")
            started = time.perf_counter()
            ivf = VectorIndex.build(ids, vectors, "ivf")
            build_seconds = time.perf_counter() - started
            with tempfile.TemporaryDirectory() as tmp:
                exact.save(Path(tmp) / "e.faiss")
                ivf.save(Path(tmp) / "i.faiss")
                mib = [(Path(tmp) / n).stat().st_size / 2**20 for n in ("e.faiss", "i.faiss")]
            faiss.omp_set_num_threads(1)  # one core per query, as the service runs (requests share the cores)
            audio, text = library(args.queries, 2, centres), library(args.queries, 3, centres, shift)
            truths = {}
            for name, queries in (("audio", audio), ("text", text)):
                exact_latency, truth = time_queries(exact, queries)
                truths[name] = truth
                e50, e95, _ = percentiles(exact_latency)
                for nprobe in (int(n) for n in args.nprobes.split(",")):
                    ivf.nprobe = nprobe
                    ivf_latency, found = time_queries(ivf, queries)
                    i50, i95, _ = percentiles(ivf_latency)
                    rows.append(
                        [size, data, name, f"{e50:.2f}", f"{e95:.2f}", nlist_for(size),
                         f"{nprobe}{'*' if nprobe == DEFAULT_NPROBE else ''}", f"{recall_at_k(found, truth):.3f}",
                         f"{i50:.3f}", f"{i95:.3f}", f"{build_seconds:.1f}", f"{mib[0]:.1f}", f"{mib[1]:.1f}"]
                    )  # fmt: skip
            if args.hnsw:
                faiss.omp_set_num_threads(threads)
                started = time.perf_counter()
                hnsw = HnswForComparison(vectors, 32)
                hnsw_build = time.perf_counter() - started
                faiss.omp_set_num_threads(1)
                for ef in (32, 64):
                    hnsw.index.hnsw.efSearch = ef
                    for name, queries in (("audio", audio), ("text", text)):
                        latency, found = time_queries(hnsw, queries)
                        h50, h95, _ = percentiles(latency)
                        rows.append(
                            [size, data, name, "", "", "HNSW32", f"ef {ef}", f"{recall_at_k(found, truths[name]):.3f}",
                             f"{h50:.3f}", f"{h95:.3f}", f"{hnsw_build:.1f}", "", ""]
                        )  # fmt: skip
        print_table(header, rows)
        print()
    faiss.omp_set_num_threads(threads)


# ------------------------------------------------------------------------------------------------ HTTP load test
def small_random_model():
    """HTSAT-tiny audio tower + a 2-layer, 32-wide BERT text tower, random weights, 512-d joint space."""
    import torch

    import clapkit
    from clapkit.inference import ClapModel
    from clapkit.models.clap import ClapModule
    from clapkit.tokenizers import load_tokenizer

    config = clapkit.get_config("laion-htsat-tiny-bert")
    small_bert = {
        "model_type": "bert",
        "vocab_size": 30522,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
    }
    text = dataclasses.replace(config.text, kind="bert", hf_config=small_bert, width=32, tokenizer="bert")
    config = config.replace(name="htsat-tiny-small-bert-random", text=text)
    torch.manual_seed(0)
    return ClapModel(ClapModule(config), config, load_tokenizer(config.text, None))


PHRASES = [
    "a dog barking",
    "rain on a tin roof",
    "a door creaking open",
    "footsteps on gravel",
    "glass breaking",
    "a car horn in traffic",
    "birds singing at dawn",
    "a crowd cheering",
    "thunder rolling",
    "a kettle whistling",
    "keyboard typing",
    "a baby crying",
    "church bells",
    "an engine idling",
    "waves on a beach",
    "wind in trees",
]


def load_test(base_url: str, paths: list[str], requests: int, concurrency: int, max_seconds: float) -> list:
    import httpx

    deadline = time.perf_counter() + max_seconds
    local = threading.local()

    def one(path: str) -> tuple[float, int] | None:
        if time.perf_counter() > deadline:
            return None
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=base_url, timeout=30)
        started = time.perf_counter()
        status = client.get(path).status_code
        return time.perf_counter() - started, status

    with ThreadPoolExecutor(concurrency) as pool:
        done = [r for r in pool.map(one, (paths[i % len(paths)] for i in range(requests))) if r is not None]
    return done


def run_http(args: argparse.Namespace) -> None:
    import torch
    import uvicorn

    from clapkit.index import IndexSearcher, build_from_vectors
    from clapkit.index.vectors import EXACT, IVF, VectorIndex, set_threads_per_query
    from clapkit.jobs import model_identity
    from clapkit.serve import ServeSettings, create_app

    set_threads_per_query(1)  # as `clapkit serve` runs: one core per query (FAISS and torch)
    torch.set_num_threads(1)
    model = small_random_model()
    identity = model_identity(model, source=model.config.name, weights="random")
    vectors = library(args.size, 4, kind_centres())
    paths = [f"/library/sound-{i:06d}.wav" for i in range(args.size)]
    rows, notes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        index = build_from_vectors(Path(tmp) / "index", identity, paths, vectors, [5.0] * args.size)
        for kind in (EXACT, IVF):
            if index.kind != kind:
                index.vectors = VectorIndex.build(sorted(index.items), vectors, kind)
            searcher = IndexSearcher(index, model, labels=["dog", "rain"])
            started = time.perf_counter()
            for phrase in PHRASES:
                searcher.embed_text(phrase)
            text_ms = (time.perf_counter() - started) / len(PHRASES) * 1e3
            queries = library(200, 9, kind_centres())
            search_ms = percentiles(time_queries(index.vectors, queries)[0])[0]
            index.vectors.save(Path(tmp) / f"{kind}.faiss")
            notes.append(
                f"{kind}: in process, one text embedding {text_ms:.2f} ms, one index search (k=10) p50 "
                f"{search_ms:.2f} ms; FAISS file {(Path(tmp) / f'{kind}.faiss').stat().st_size / 2**20:.1f} MiB"
            )
            app = create_app(searcher, ServeSettings())
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            while not server.started:
                time.sleep(0.05)
            port = server.servers[0].sockets[0].getsockname()[1]
            base = f"http://127.0.0.1:{port}"
            rng = np.random.default_rng(5)
            endpoints = {
                "GET /api/search?q=TEXT&k=10": [f"/api/search?q={p}&k=10" for p in PHRASES],
                "GET /api/items/ID/similar?k=10": [
                    f"/api/items/{i}/similar?k=10" for i in rng.integers(0, args.size, 64)
                ],
                "GET /api/health": ["/api/health"],
            }
            load_test(base, endpoints["GET /api/health"], 20, 2, 10)  # warm up connections
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                for name, urls in endpoints.items():
                    results = load_test(base, urls, args.requests, concurrency, args.max_seconds)
                    p50, p95, p99 = percentiles([r[0] for r in results])
                    errors = sum(1 for r in results if r[1] != 200)
                    mean = statistics.mean(r[0] for r in results) * 1e3
                    rows.append(
                        [kind, concurrency, name, len(results), errors, f"{p50:.1f}", f"{p95:.1f}", f"{p99:.1f}",
                         f"{mean:.1f}"]
                    )  # fmt: skip
            server.should_exit = True
            thread.join(timeout=10)
        items_mib = index.file_sizes()["items"] / 2**20
    print(f"\n{args.size} vectors of {DIM} dimensions, clients on loopback (keep-alive connections)\n")
    print_table(["index", "clients", "endpoint", "requests", "non-200", "p50 ms", "p95 ms", "p99 ms", "mean ms"], rows)
    print("\n" + "\n".join(notes) + f"\nitem table (items-N.csv): {items_mib:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="part", required=True)
    sweep = sub.add_parser("index", help="exact vs IVF by size: latency, recall@10")
    sweep.add_argument("--sizes", default="1000,5000,10000,20000,30000,50000,100000")
    sweep.add_argument("--queries", type=int, default=300)
    sweep.add_argument("--nprobes", default="8,16,32", help="IVF cells visited per query, to compare")
    sweep.add_argument("--hnsw", action="store_true", help="also FAISS HNSW (M 32; efSearch 32, 64), to compare")
    sweep.set_defaults(func=run_index_sweep)
    http = sub.add_parser("http", help="bounded load test of the HTTP service on loopback")
    http.add_argument("--size", type=int, default=100_000)
    http.add_argument("--requests", type=int, default=300, help="requests per endpoint (bounded)")
    http.add_argument("--concurrency", default="1,4", help="concurrent clients, one run per value")
    http.add_argument("--max-seconds", type=float, default=60.0, help="stop an endpoint's run after this long")
    http.set_defaults(func=run_http)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
