"""`qamoe-live --share-frames` end to end: a real GRID clip replayed through the pipeline, `qamoe.v1.frame` read by
a real ZeroMQ subscriber: decodable JPEG thumbnails with a plausible face box at the asked rate, counted in
health; and without the flag, no frame message at all (privacy default)."""

from __future__ import annotations

import base64
import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli.liverun import LiveCommand, LiveOutcome, run_to_end
from edge.publish import TOPIC_FRAME, validate
from edge.vocab import NS
from tests.support.live_fixtures import GRID, free_endpoint, make_live_engines

pytestmark = pytest.mark.slow
CLIP = GRID / "id2_vcd_swwp2s.mpg"  # a speaker facing the camera, 3 s, 360x288


@pytest.fixture(scope="module")
def engines(tmp_path_factory) -> Path:
    return make_live_engines(tmp_path_factory.mktemp("frames"))


def _replay(engines: Path, *args: str) -> LiveOutcome:
    if not CLIP.exists():
        pytest.skip(f"{CLIP} not found: the GRID clips live in ../shared/media/grid")
    command = LiveCommand(("--video-file", str(CLIP), *args), engines_dir=engines, endpoint=free_endpoint())
    return run_to_end(command, 120, record=True)


def _check_frame(body: dict) -> None:
    validate(TOPIC_FRAME, body)
    jpeg = base64.b64decode(body["jpeg"], validate=True)
    assert len(jpeg) == body["jpeg_bytes"] <= 65536
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (body["height"], body["width"], 3)
    assert max(image.shape[:2]) <= 320 and float(image.std()) > 5  # a picture, not a blank
    face = body["face"]
    assert face is not None, "no face box on a clip that shows a face all along"
    assert 0.25 < face["cx"] < 0.75 and 0.15 < face["cy"] < 0.85, face  # the speaker sits in the middle
    assert 0.05 < face["w"] < 0.8 and 0.05 < face["h"] < 0.8 and face["score"] >= 0.5, face


def test_fast_replay_shares_decodable_thumbnails_at_the_rate(engines: Path) -> None:
    run = _replay(engines, "--fast", "--share-frames")
    assert run.exit_code == 0, run.stderr
    assert "Traceback" not in run.stderr
    frames = run.of("frame")
    for body in frames:
        _check_frame(body)
    # 3 s of capture at 2 a second (capture time, not wall time: a fast replay shares the same frames)
    assert 5 <= len(frames) <= 7, [f["captured"]["mono_ns"] for f in frames]
    captured = [f["captured"]["mono_ns"] for f in frames]
    assert all(b - a >= NS // 2 for a, b in itertools.pairwise(captured)), captured
    seqs = [f["seq"] for f in frames]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert run.of("sentiment"), "frames are shared beside the estimates, not instead of them"


def test_real_time_replay_counts_frames_in_health(engines: Path) -> None:
    run = _replay(engines, "--share-frames", "4")
    assert run.exit_code == 0, run.stderr
    frames = run.of("frame")
    for body in frames:
        _check_frame(body)
    assert 8 <= len(frames) <= 13, len(frames)  # 3 s at 4 a second
    sent = [f["sent"]["mono_ns"] for f in frames]
    assert (sent[-1] - sent[0]) / NS >= (len(frames) - 1) / 4 * 0.6  # sent as captured, not in a burst
    health = run.of("health")
    assert health, "no health message in a 3 s real-time run"
    last = health[-1]
    assert "frame_share" in last["queues"] and last["queues"]["frame_share"]["dropped"] == 0
    assert 1 <= last["messages"]["published"][TOPIC_FRAME] <= len(frames)


def test_without_the_flag_no_frame_leaves_the_node(engines: Path) -> None:
    run = _replay(engines)  # real time: health is published too
    assert run.exit_code == 0, run.stderr
    assert run.of("sentiment")
    assert not [t for t, _ in run.messages if t == TOPIC_FRAME]
    health = run.of("health")
    assert health and all(h["messages"]["published"][TOPIC_FRAME] == 0 for h in health)
    assert all("frame_share" not in h["queues"] for h in health)


@pytest.mark.parametrize(
    ("args", "says"),
    [(("--share-frames", "10"), "--share-frames 10.0"), (("--share-frames", "0"), "--share-frames 0.0")],
)
def test_a_bad_rate_is_refused(engines: Path, args: tuple[str, ...], says: str) -> None:
    run = _replay(engines, "--fast", *args)
    assert run.exit_code == 2 and says in run.stderr, run.stderr


def test_sharing_frames_needs_a_camera(engines: Path) -> None:
    if not CLIP.exists():
        pytest.skip(f"{CLIP} not found: the GRID clips live in ../shared/media/grid")
    command = LiveCommand(("--camera", "none", "--mic", str(CLIP), "--fast", "--share-frames"),
                          engines_dir=engines, endpoint=free_endpoint())
    run = run_to_end(command, 60)
    assert run.exit_code == 2 and "--share-frames shares camera frames" in run.stderr, run.stderr
