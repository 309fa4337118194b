"""qamoe-live runtime: capture, features, inference backends and publishing.

Never imports torch or `qamoe`: it meets the model only through artifacts (the ONNX file, the feature spec and
`engines/manifest.json`)."""

__version__ = "0.1.0"
