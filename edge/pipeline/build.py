"""What a run needs, built once from its configuration: extractors, ASR, backend, and the model's identity.

Refuses, before anything starts, a model whose feature spec is not the extractors' (a clear error that names
the fix), so a window is never fed to a model that reads its columns differently."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from edge.asr.streaming import StreamingAsr, StreamingAsrConfig
from edge.asr.transcriber import AsrConfig, Transcriber, streaming_config
from edge.assets import default_engines_dir
from edge.backends.base import Backend, BackendConfig
from edge.backends.select import open_backend
from edge.features.audio import AudioFeatureExtractor
from edge.features.audio_config import AudioFeatureConfig
from edge.features.spec import FeatureSpec, FeatureSpecError, default_feature_spec, extractor_spec_for
from edge.features.text import TextEncoder
from edge.features.visual import VisualFeatureExtractor
from edge.manifest import MANIFEST_NAME, ManifestError, load_manifest
from edge.pipeline.stages import AsrStage, AudioStage, VisionStage, WindowStage
from edge.publish.messages import ModelInfo
from edge.windows import WindowConfig

log = logging.getLogger(__name__)

REBUILD = "run `python tools/build_engine.py` (it builds the engines for this machine)"


@dataclass(frozen=True)
class PipelineConfig:
    """What to build. `use_video` / `use_audio`: whether a camera / microphone is configured (text needs
    audio). `deterministic`: fixed ASR cadence (no load shedding), for fast replay."""

    use_video: bool = True
    use_audio: bool = True
    engines_dir: Path | None = None
    backend: BackendConfig = field(default_factory=BackendConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    streaming: StreamingAsrConfig = field(default_factory=StreamingAsrConfig)
    window_s: float = 4.0
    hop_s: float = 0.5
    lateness_s: float = 0.45
    deterministic: bool = False


@dataclass
class Components:
    spec: FeatureSpec
    model: ModelInfo
    backend: Backend
    text: TextEncoder
    vision: VisionStage | None
    audio: AudioStage | None
    asr: AsrStage | None
    window_config: WindowConfig

    def window_stage(self, t0_ns: int) -> WindowStage:
        return WindowStage(self.spec, self.text, self.backend, self.window_config, t0_ns)

    def reset(self) -> None:
        """Forget the previous stream (frame sampler, audio clock, ASR buffer), keeping the loaded models: one
        process can run the pipeline again (tests, soak) without loading them twice."""
        for stage in (self.vision, self.audio, self.asr):
            if stage is not None:
                stage.reset()

    def close(self) -> None:
        self.backend.close()


def model_info(engines_dir: Path, backend: Backend, spec: FeatureSpec, model: str = "qamoe") -> ModelInfo:
    try:
        manifest = load_manifest(engines_dir / MANIFEST_NAME)
        artifact = manifest.get(model)
    except ManifestError as e:
        raise FeatureSpecError(f"no model engine ({e}): {REBUILD} with --checkpoint") from None
    recorded = manifest.sections.get("feature_spec")
    if recorded is not None and FeatureSpec.from_dict(recorded).digest != spec.digest:
        raise FeatureSpecError(
            f"{engines_dir} was built for another version of the feature extractors: {REBUILD}"
        )
    digest = str(artifact.extra.get("feature_spec_digest") or "")
    if digest != spec.digest:
        raise FeatureSpecError(
            f"the model in {engines_dir} was trained on another feature spec ({digest[:12] or 'unknown'}) than"
            f" these extractors produce ({spec.digest[:12]}): rebuild it from a checkpoint trained on features"
            " of this qamoe-live (tools/extract_features.py, tools/train.py, tools/build_engine.py --checkpoint)"
        )
    return ModelInfo(
        backend=backend.name,
        model_id=str(artifact.extra.get("model") or model),
        model_hash=str(artifact.extra.get("model_hash") or artifact.sha256),
        feature_spec_digest=spec.digest,
    )


def engine_spec(engines_dir: Path, window_s: float, hop_s: float, model: str = "qamoe") -> FeatureSpec:
    """The spec the engines' model reads when these extractors can make it (with or without the voice
    encoder's columns, edge.features.spec.extractor_specs); otherwise the default, which `model_info` then
    refuses with the fix."""
    try:
        digest = str(
            load_manifest(engines_dir / MANIFEST_NAME).get(model).extra.get("feature_spec_digest") or ""
        )
    except ManifestError:
        digest = ""
    return extractor_spec_for(digest, window_s, hop_s) or default_feature_spec(window_s, hop_s)


def build(config: PipelineConfig) -> Components:
    engines = config.engines_dir or default_engines_dir()
    spec = engine_spec(engines, config.window_s, config.hop_s, config.backend.model)
    backend = open_backend(BackendConfig(**{**config.backend.__dict__, "engines_dir": engines}))
    try:
        info = model_info(engines, backend, spec, config.backend.model)
        text = TextEncoder(engines_dir=engines)
        vision = None
        if config.use_video:
            vision = VisionStage(VisualFeatureExtractor(engines_dir=engines), spec.vision.required_rate_hz())
        audio = None
        if config.use_audio:
            audio_config = AudioFeatureConfig(voice_encoder=spec.voice_encoder)
            audio = AudioStage(AudioFeatureExtractor(audio_config, engines_dir=engines))
        asr = None
        if config.use_audio:
            # greedy, one bounded decode per step (edge.asr.bounded): Whisper's temperature fallback made
            # 10-25 s decodes on looped speech (the soak's lag episodes) and its 30 s window and remainder seeks
            # cost ~1.6x more per step; the streaming ASR re-decodes the buffer at its next step anyway
            streaming = config.streaming
            asr_config = streaming_config(config.asr)
            if config.deterministic:  # the same audio must give the same words: a fixed cadence (no shedding)
                streaming = StreamingAsrConfig(**{**streaming.__dict__, "max_step_s": streaming.step_s})
            asr = AsrStage(StreamingAsr(Transcriber(asr_config, engines).transcribe, streaming))
    except BaseException:
        backend.close()
        raise
    window = WindowConfig(
        length_s=spec.window_s,
        hop_s=spec.hop_s,
        lateness_s=config.lateness_s,
        text_context_s=spec.text.required_context_s(),
    )
    return Components(spec, info, backend, text, vision, audio, asr, window)
