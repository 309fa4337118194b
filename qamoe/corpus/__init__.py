"""Corpus building and offline feature extraction: a bridge layer (docs/ARCHITECTURE.md).

The training corpus is made by the runtime's own extractors (`edge.features`, `edge.asr`), so a model learns
from exactly the features it will meet live, and written in the model package's shard format (`qamoe.data`).
Code that needs both sides lives here, not in `edge` (the runtime never imports `qamoe`, and nothing in the
runtime needs corpus code) and not in `qamoe`'s core (which never imports `edge`).

  plan            which media, corruption and face draw make each sample (label-free outside training)
  jobs            making samples in worker processes
  synth           speech for text-only rows (espeak-ng, a pinned voice space)
  facebank        faces from the live visual extractor, indexed for label-paired (training) or free draws
  offline         one clip through the live extractors and window assembler
  raw_corruptions corruptions applied to raw audio and frames, before the extractors
  build_io        tools/build_corpus.py's folder: rows in, face bank, shards, records out
  extract_io      the resumable shard folder shared by tools/extract_features.py and tools/build_corpus.py
"""
