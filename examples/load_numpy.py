import json

import numpy as np
from safetensors.numpy import load_file

ACTIVATIONS = {  # the `activation` metadata entry: applied after each hidden layer
    "relu": lambda z: np.maximum(z, 0),
    "tanh": np.tanh,
    "sigmoid": lambda z: 0.5 * (1 + np.tanh(0.5 * z)),  # 1 / (1 + e^-z), without overflow
    "leaky-relu": lambda z: np.where(z > 0, z, np.float32(0.01) * z),
}


def load_vnn(path):
    """Returns (predict, feature_names); predict(x) gives (probabilities, classes)."""
    tensors = load_file(path)
    with open(path, "rb") as f:  # the header: an 8-byte length, then JSON
        meta = json.loads(f.read(int.from_bytes(f.read(8), "little")))["__metadata__"]
    n_layers = len(json.loads(meta["sizes"])) - 1
    layers = [(tensors[f"layers.{i}.weight"], tensors[f"layers.{i}.bias"])
              for i in range(n_layers)]
    std = json.loads(meta["standardize"])  # null, or {"mean": [...], "scale": [...]}
    act = ACTIVATIONS[meta.get("activation", "relu")]  # files without the entry are ReLU
    classes = np.array(json.loads(meta["class_names"]))

    def predict(x):
        x = np.asarray(x, dtype=np.float32)  # raw features, in feature_names order
        if std is not None:
            x = (x - np.float32(std["mean"])) / np.float32(std["scale"])
        for i, (w, b) in enumerate(layers):
            x = x @ w + b  # w is [n_in, n_out]: x @ W, not PyTorch's x @ W.T
            if i < n_layers - 1:
                x = act(x)  # after each hidden layer
        e = np.exp(x - x.max(axis=1, keepdims=True))  # x: the logits
        proba = e / e.sum(axis=1, keepdims=True)
        return proba, classes[proba.argmax(axis=1)]

    return predict, json.loads(meta["feature_names"])
