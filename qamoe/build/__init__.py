"""Build-time code: obtain pinned third-party models, convert them to ONNX, check parity, record the manifest.

Torch, transformers and other heavy tools may be used here (build time), never by the runtime (`edge`).
Modules that need them are imported only when their stage actually runs, so `--check` and up-to-date builds
stay light.
"""
