"""The live pipeline: capture -> features -> sliding windows -> QA-MoE -> ZeroMQ.

`stages` holds the thread-free steps (the same objects serve live capture, real-time replay and deterministic
fast replay); `runtime` runs them on threads for live use; `replay` drives them synchronously for
deterministic evaluation and tests."""
