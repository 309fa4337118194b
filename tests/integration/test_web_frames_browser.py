"""The frame view in a real browser (headless Chromium via Selenium; skipped with the reason where absent).

- `qamoe-web --frames` on a node that runs `qamoe-live --share-frames` (a real-time replay of a real GRID clip):
  the camera canvas updates with the face box, under the page's unchanged CSP (no <img>, Trusted Types on)
- `qamoe-web` without `--frames` on a node that publishes frames: no frame reaches the page (DOM) nor its
  WebSocket, while the rest of the page keeps updating
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from websockets.asyncio.client import connect

from edge.cli.liverun import LiveCommand, LiveRun
from edge.cli.webrun import WebCommand, WebRun
from edge.publish import (
    Estimate,
    FaceBox,
    ModelInfo,
    Publisher,
    PublisherConfig,
    Thumbnail,
    WindowInfo,
    frame_message,
    sentiment_message,
)
from edge.vocab import NS
from tests.support.browser import wait_for
from tests.support.live_fixtures import GRID, free_endpoint, make_live_engines

CLIP = GRID / "id2_vcd_swwp2s.mpg"  # a speaker facing the camera, 3 s


def camera(driver: Any) -> dict[str, Any]:
    """What the camera panel shows, read from the DOM (and a few pixels of the canvas)."""
    return driver.execute_script("""
        const c = document.getElementById('frame'), hint = document.getElementById('frame-hint');
        const trace = document.getElementById('trace');
        let green = 0;
        if (!c.hidden && c.width > 0) {
          const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          for (let i = 0; i < px.length; i += 4) if (px[i] === 0 && px[i + 1] > 200 && px[i + 2] > 100 &&
            px[i + 2] < 140) green++;
        }
        return {conn: document.getElementById('conn').dataset.state, hidden: c.hidden,
                frames: Number(c.dataset.frames), seq: c.dataset.seq, face: c.dataset.face,
                width: c.width, height: c.height, boxPixels: green, mode: hint.dataset.mode,
                hint: hint.textContent, points: Number(trace.dataset.points),
                images: document.images.length};
    """)


def test_frames_follow_a_sharing_node(browser: Any, tmp_path: Path) -> None:
    if not CLIP.exists():
        pytest.skip(f"{CLIP} not found: the GRID clips live in ../shared/media/grid")
    engines = make_live_engines(tmp_path)
    endpoint = free_endpoint()
    live = LiveCommand(("--video-file", str(CLIP), "--loop", "--duration", "12", "--share-frames"),
                       engines_dir=engines, endpoint=endpoint)
    with WebRun(WebCommand(endpoint, args=("--frames",))) as web, LiveRun(live) as run:
        browser.get(web.url)
        wait_for(lambda: camera(browser)["conn"] == "open", 10, "open WebSocket")
        first = wait_for(lambda: (d := camera(browser))["frames"] >= 1 and d, 60, "a camera frame")
        later = wait_for(lambda: (d := camera(browser))["frames"] >= first["frames"] + 3 and d, 20, "more frames")
        browser.save_screenshot(str(tmp_path / "web_frames.png"))
        outcome = run.finish(30)
        assert web.stop() == 0, web.stderr
    assert outcome.exit_code == 0, outcome.stderr
    assert not later["hidden"] and later["mode"] == "live" and later["images"] == 0
    assert (later["width"], later["height"]) == (320, 256)  # 360x288 shrunk to a 320 px longest side
    assert int(later["seq"]) > int(first["seq"])
    cx, cy, w, h = (float(v) for v in later["face"].split(","))
    assert 0.25 < cx < 0.75 and 0.15 < cy < 0.85 and 0.05 < w < 0.8 and 0.05 < h < 0.8, later["face"]
    assert later["boxPixels"] > 50, "the face box is not drawn on the canvas"


def _publish(pub: Publisher, i: int, jpeg: bytes) -> None:
    window = WindowInfo("cam0", i * NS, i * NS + 4 * NS, {"text": True, "audio": True, "vision": True})
    est = Estimate(0.8, 0.09, {"text": 0.7, "audio": 0.5, "vision": 0.6}, [1.0])
    pub.publish(sentiment_message(window, est, ModelInfo("ort-cpu", "m", "0" * 64, "1" * 64)))
    pub.publish(frame_message(source_id="cam0", thumbnail=Thumbnail(jpeg, 160, 120, 70), captured_ns=i * NS,
                              face=FaceBox(0.5, 0.5, 0.3, 0.4, 0.9)))


async def _ws_messages(url: str, seconds: float) -> list[str]:
    got: list[str] = []
    async with connect(url) as ws:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                got.append(str(await asyncio.wait_for(ws.recv(), left)))
            except TimeoutError:
                break
    return got


def test_without_frames_no_frame_reaches_the_page(browser: Any) -> None:
    ok, buf = cv2.imencode(".jpg", np.full((120, 160, 3), 90, np.uint8))
    assert ok
    endpoint = free_endpoint()
    with (Publisher(PublisherConfig(endpoint=endpoint)) as pub, WebRun(WebCommand(endpoint)) as off,
          WebRun(WebCommand(endpoint, args=("--frames",))) as on):
        browser.get(off.url)
        wait_for(lambda: camera(browser)["conn"] == "open", 10, "open WebSocket")
        ws_url = off.url.replace("http://", "ws://").replace("/?token=", "/ws?token=")
        for i in range(40):  # until the page shows the stream (ZeroMQ's slow joiner), frames published all along
            _publish(pub, i, buf.tobytes())
            if camera(browser)["points"] >= 2:
                break
            time.sleep(0.25)
        watcher = asyncio.new_event_loop()
        try:
            pending = watcher.create_task(_ws_messages(ws_url, 3.0))
            for i in range(40, 52):
                _publish(pub, i, buf.tobytes())
                watcher.run_until_complete(asyncio.sleep(0.25))
            seen = watcher.run_until_complete(pending)
        finally:
            watcher.close()
        shown_off = camera(browser)
        browser.get(on.url)  # the same stream through a server with --frames: the frames were there to show
        wait_for(lambda: camera(browser)["conn"] == "open", 10, "open WebSocket")
        for i in range(52, 92):
            _publish(pub, i, buf.tobytes())
            if camera(browser)["frames"] >= 1:
                break
            time.sleep(0.25)
        shown_on = wait_for(lambda: (d := camera(browser))["frames"] >= 1 and d, 10, "a frame with --frames")
        assert off.stop() == 0 and on.stop() == 0
    assert shown_off["points"] >= 2, "the page did not follow the stream at all"
    assert shown_off["hidden"] and shown_off["frames"] == 0 and shown_off["mode"] == "off"
    assert "qamoe-web --frames" in shown_off["hint"]
    kinds = [json.loads(text)["kind"] for text in seen]
    assert kinds[0] == "snapshot" and "sentiment" in kinds and "frame" not in kinds, kinds
    assert not any('"jpeg"' in text for text in seen)
    assert json.loads(seen[0])["frame"] is None and json.loads(seen[0])["frames"] is False
    assert not shown_on["hidden"] and (shown_on["width"], shown_on["height"]) == (160, 120)
    assert shown_on["face"] == "0.500,0.500,0.300,0.400"
