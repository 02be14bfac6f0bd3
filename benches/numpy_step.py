"""The numpy reference of `vnn bench`: the two-layer network's training step
and batch-1 prediction written line for line as numpy code (with biases:
z = X W1 + b1, relu, logits = a W2 + b2, softmax, loss, backprop, update),
timed like `vnn bench` (warm-up, then samples; median, min, max per call).

Prints one JSON object per workload per line on stdout, in the same shape as
`vnn bench --json`; the BLAS that numpy uses goes to stderr.

Usage: numpy_step.py [--workload spiral|mnist|infer-small|infer-mnist|all]
                     [--threads N]   (only recorded; set OPENBLAS_NUM_THREADS)
"""

import argparse
import json
import sys
import time

import numpy as np

DTYPE = np.float32


def spiral(points_per_class, classes, rng):
    n = points_per_class * classes
    X = np.zeros((n, 2), dtype=DTYPE)
    y = np.zeros(n, dtype=np.int64)
    for j in range(classes):
        ix = range(points_per_class * j, points_per_class * (j + 1))
        r = np.linspace(0.0, 1, points_per_class)
        t = np.linspace(j * 4, (j + 1) * 4, points_per_class) + rng.standard_normal(points_per_class) * 0.2
        X[ix] = np.c_[r * np.sin(t), r * np.cos(t)]
        y[ix] = j
    return X, y


def init(d, h, k, rng):
    W1 = (np.sqrt(2.0 / d) * rng.standard_normal((d, h))).astype(DTYPE)
    b1 = np.zeros((1, h), dtype=DTYPE)
    W2 = (np.sqrt(2.0 / h) * rng.standard_normal((h, k))).astype(DTYPE)
    b2 = np.zeros((1, k), dtype=DTYPE)
    return [W1, b1, W2, b2]


def step(X, y, params, reg, lr):
    """One full-batch gradient-descent step, the seed's lines plus biases."""
    W_1, b_1, W_2, b_2 = params
    n = X.shape[0]
    z_2 = np.dot(X, W_1) + b_1
    a_2 = np.maximum(0, z_2)  # ReLU
    logits = np.dot(a_2, W_2) + b_2

    # Class probabilities
    exp_logits = np.exp(logits)
    probs = exp_logits / np.sum(exp_logits, axis=1, keepdims=True)

    # Loss
    correct_class_logprobs = -np.log(probs[range(len(probs)), y])
    loss = np.sum(correct_class_logprobs) / n
    loss += 0.5 * reg * np.sum(W_1 * W_1)
    loss += 0.5 * reg * np.sum(W_2 * W_2)

    # Backpropagation
    dscores = probs
    dscores[range(len(probs)), y] -= 1
    dscores /= n
    dW2 = np.dot(a_2.T, dscores)
    db2 = np.sum(dscores, axis=0, keepdims=True)
    dhidden = np.dot(dscores, W_2.T)
    dhidden[a_2 <= 0] = 0  # ReLu backprop
    dW1 = np.dot(X.T, dhidden)
    db1 = np.sum(dhidden, axis=0, keepdims=True)

    dW2 += reg * W_2
    dW1 += reg * W_1

    W_1 += -lr * dW1
    b_1 += -lr * db1
    W_2 += -lr * dW2
    b_2 += -lr * db2
    return loss


def predict_one(x, params):
    W_1, b_1, W_2, b_2 = params
    z_2 = np.dot(x, W_1) + b_1
    a_2 = np.maximum(0, z_2)
    logits = np.dot(a_2, W_2) + b_2
    return np.argmax(logits, axis=1)


def measure(f, warmup_s, measure_s, min_samples, max_samples, sample_s):
    """Per-call nanoseconds of `f`: warm-up, then samples of batched calls."""
    start = time.perf_counter()
    calls = 0
    while calls == 0 or time.perf_counter() - start < warmup_s:
        f()
        calls += 1
    per_call = (time.perf_counter() - start) / calls
    inner = max(1, int(np.ceil(sample_s / per_call)))
    samples = int(measure_s / (per_call * inner))
    samples = min(max(samples, min_samples), max_samples)
    ns = []
    for _ in range(samples):
        t = time.perf_counter_ns()
        for _ in range(inner):
            f()
        ns.append((time.perf_counter_ns() - t) / inner)
    ns.sort()
    return ns, inner


def report(name, threads, ns, inner, flop):
    med = float(np.median(ns))
    out = {
        "workload": name,
        "threads": threads,
        "median_ns": med,
        "min_ns": ns[0],
        "max_ns": ns[-1],
        "samples": len(ns),
        "calls_per_sample": inner,
    }
    if flop:
        out["gflops"] = flop / med
    print(json.dumps(out), flush=True)


def step_flop(n, d, h, k):
    return 2.0 * n * (2.0 * d * h + 3.0 * h * k)


def blas_info():
    """What BLAS numpy runs, from threadpoolctl if present, else numpy's config."""
    try:
        from threadpoolctl import threadpool_info

        for lib in threadpool_info():
            if lib.get("user_api") == "blas":
                keys = ("internal_api", "version", "architecture", "threading_layer", "num_threads")
                return "threadpoolctl: " + ", ".join(f"{k}={lib.get(k)}" for k in keys)
    except ImportError:
        pass
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        return "numpy.show_config: " + json.dumps(blas)
    except TypeError:
        return "numpy.__config__ (no dict mode): see numpy.show_config()"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", default="all")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    w = a.workload
    print(f"numpy {np.__version__}, dtype {np.dtype(DTYPE).name}; BLAS: {blas_info()}", file=sys.stderr)
    rng = np.random.default_rng(0)
    fast = dict(warmup_s=0.3, measure_s=2.0, min_samples=20, max_samples=2000, sample_s=1e-3)
    if w in ("all", "spiral"):
        X, y = spiral(100, 3, rng)
        params = init(2, 100, 3, rng)
        ns, inner = measure(lambda: step(X, y, params, 1e-3, 1.0), **fast)
        report("spiral", a.threads, ns, inner, step_flop(300, 2, 100, 3))
    if w in ("all", "mnist"):
        n, d, h, k = 10_000, 784, 512, 10
        X = rng.standard_normal((n, d), dtype=DTYPE)
        y = rng.integers(0, k, n)
        params = init(d, h, k, rng)
        slow = dict(warmup_s=0.5, measure_s=5.0, min_samples=15, max_samples=60, sample_s=0.0)
        ns, inner = measure(lambda: step(X, y, params, 1e-3, 1e-3), **slow)
        report("mnist", a.threads, ns, inner, step_flop(n, d, h, k))
    for name, sizes in (("infer-small", (2, 100, 3)), ("infer-mnist", (784, 512, 10))):
        if w in ("all", name):
            params = init(*sizes, rng)
            x = rng.standard_normal((1, sizes[0]), dtype=DTYPE)
            ns, inner = measure(lambda: predict_one(x, params), **fast)
            flop = 2.0 * (sizes[0] * sizes[1] + sizes[1] * sizes[2])
            report(name, 1, ns, inner, flop)


if __name__ == "__main__":
    main()
