"""qamoe-web in a real browser (headless Chromium via Selenium; skipped with the reason where absent).

- a real-time replay of a real GRID clip through qamoe-live: the valence trace, the reliability bars, the
  transcript and the device table update from the stream (read from the DOM); a screenshot is saved
- a hostile transcript and device name, published with a real Publisher, render as text: no element is made
  from them, no handler runs, control characters show as visible escapes
- a wrong token is refused (page: 403 in the browser; WebSocket: 403)
"""

from __future__ import annotations

import asyncio
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from edge.cli.liverun import LiveCommand, LiveRun
from edge.cli.webrun import WebCommand, WebRun
from edge.publish import (
    DeviceStatus,
    Estimate,
    HealthStats,
    ModelInfo,
    Publisher,
    PublisherConfig,
    PublishStats,
    WindowInfo,
    health_message,
    sentiment_message,
    transcript_message,
)
from edge.vocab import NS, Word
from tests.support.browser import wait_for
from tests.support.live_fixtures import GRID, free_endpoint, make_live_engines

CLIP = GRID / "id2_vcd_swwp2s.mpg"  # "set white with p two soon", 3 s
HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">\x1b[31m\u202eevil\x07'
HOSTILE_SHOWN = (
    '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">\\x1b[31m\\u202eevil\\x07'
)


def dom(driver: Any) -> dict[str, Any]:
    """What the page shows, read from the DOM."""
    return driver.execute_script("""
        const bar = (m) => { const b = document.getElementById('bar-' + m);
          return {present: b.dataset.present, reliability: b.dataset.reliability,
                  width: b.querySelector('.fill').style.width,
                  hatch: getComputedStyle(b.querySelector('.track')).backgroundImage}; };
        const canvas = document.getElementById('trace');
        return {conn: document.getElementById('conn').dataset.state,
                points: Number(canvas.dataset.points), last: canvas.dataset.lastValence,
                bars: {text: bar('text'), audio: bar('audio'), vision: bar('vision')},
                transcript: [...document.querySelectorAll('#transcript li')].map((li) => li.textContent),
                transcriptChildren: document.querySelectorAll('#transcript li *').length,
                devices: [...document.querySelectorAll('#devices tbody tr')].map(
                  (tr) => [...tr.children].map((td) => td.textContent)),
                deviceChildren: document.querySelectorAll('#devices td *').length,
                valence: document.getElementById('valence-now').textContent,
                snapshots: Number(document.getElementById('stats').dataset.snapshots),
                images: document.images.length, scripts: document.scripts.length,
                pwned: window.__pwned === undefined ? null : window.__pwned};
    """)


@pytest.mark.slow
def test_page_follows_a_real_time_replay(browser: Any, tmp_path: Path) -> None:
    if not CLIP.exists():
        pytest.skip(f"{CLIP} not found: the GRID clips live in ../shared/media/grid")
    engines = make_live_engines(tmp_path)
    endpoint = free_endpoint()
    live = LiveCommand(
        ("--video-file", str(CLIP), "--loop", "--duration", "12"), engines_dir=engines, endpoint=endpoint
    )
    with WebRun(WebCommand(endpoint)) as web, LiveRun(live) as run:
        browser.get(web.url)
        wait_for(lambda: dom(browser)["conn"] == "open", 10, "open WebSocket")
        first = wait_for(lambda: (d := dom(browser))["points"] >= 2 and d, 60, "trace points")
        later = wait_for(
            lambda: (d := dom(browser))["points"] >= first["points"] + 4 and d["transcript"] and d,
            30,
            "more trace points and a transcript line",
        )
        browser.save_screenshot(str(tmp_path / "web_view.png"))
        outcome = run.finish(30)
        assert web.stop() == 0, web.stderr
    assert outcome.exit_code == 0, outcome.stderr
    assert later["last"] != "" and -3 <= float(later["last"]) <= 3
    assert later["snapshots"] == 1  # the state once on connecting, then updates only: it never fell behind
    for name in ("text", "audio", "vision"):
        bar = later["bars"][name]
        assert bar["reliability"] != "" and 0 <= float(bar["reliability"]) <= 1, (name, bar)
        assert bar["width"].endswith("%")
    assert later["bars"]["vision"]["present"] == "true" and later["bars"]["audio"]["present"] == "true"
    words = " ".join(later["transcript"]).lower()
    assert any(w in words for w in ("set", "white", "with", "soon")), later["transcript"]
    roles = {row[0]: row[1] for row in later["devices"]}
    assert roles.get("camera") == "ok" and roles.get("microphone") == "ok", later["devices"]
    assert (tmp_path / "web_view.png").stat().st_size > 10_000


def _publish_hostile(pub: Publisher, i: int) -> None:
    window = WindowInfo("cam0", i * NS, i * NS + 4 * NS, {"text": True, "audio": True, "vision": False})
    est = Estimate(-1.5, 0.09, {"text": 0.7, "audio": 0.5, "vision": 0.0003}, [1.0])
    pub.publish(sentiment_message(window, est, ModelInfo("ort-cpu", "m", "0" * 64, "1" * 64)))
    pub.publish(transcript_message(source_id="cam0", words=[Word(HOSTILE, i * NS, i * NS + 1)]))
    pub.publish(health_message(HealthStats(
        source_id="cam0", uptime_s=float(i), fps={"camera": 25.0}, queues={},
        devices={"camera": DeviceStatus("ok", name=HOSTILE), "microphone": DeviceStatus("absent", detail=HOSTILE)},
        messages=PublishStats(),
    )))  # fmt: skip


def test_hostile_text_renders_as_text(browser: Any, tmp_path: Path) -> None:
    endpoint = free_endpoint()
    with Publisher(PublisherConfig(endpoint=endpoint)) as pub, WebRun(WebCommand(endpoint)) as web:
        browser.get(web.url)
        wait_for(lambda: dom(browser)["conn"] == "open", 10, "open WebSocket")
        for i in range(40):  # until the subscription is through (ZeroMQ's slow joiner) and the page shows it
            _publish_hostile(pub, i)
            if dom(browser)["transcript"]:
                break
            time.sleep(0.25)
        _publish_hostile(pub, 41)
        shown = wait_for(lambda: (d := dom(browser))["points"] >= 2 and d, 10, "the published windows")
        browser.save_screenshot(str(tmp_path / "hostile.png"))
        # the page's CSP is in force: Trusted Types refuse a string assigned to innerHTML, inline script is out
        refused = browser.execute_script("""
            try { document.getElementById('stats').innerHTML = '<b>x</b>'; return null; }
            catch (e) { return e.name + ': ' + e.message; }""")
        assert web.stop() == 0
    assert shown["transcript"] and all(line == HOSTILE_SHOWN for line in shown["transcript"])
    assert shown["transcriptChildren"] == 0 and shown["deviceChildren"] == 0  # text nodes only
    assert shown["images"] == 0 and shown["scripts"] == 1  # only the page's own app.js
    assert shown["pwned"] is None
    assert refused is not None and "TrustedHTML" in refused, refused
    assert ["camera", "ok", HOSTILE_SHOWN, ""] in shown["devices"]
    assert ["microphone", "absent", "", HOSTILE_SHOWN] in shown["devices"]
    assert shown["last"] == "-1.5000" and shown["valence"] == "-1.50"
    vision = shown["bars"]["vision"]
    assert vision["present"] == "false" and "repeating-linear-gradient" in vision["hatch"]  # hatched: absent
    assert shown["bars"]["text"]["present"] == "true" and "gradient" not in shown["bars"]["text"]["hatch"]


def test_wrong_token_is_refused(browser: Any) -> None:
    endpoint = free_endpoint()
    with WebRun(WebCommand(endpoint, token="right_token_" + "r" * 10)) as web:
        browser.get(web.base + "?token=wrong_token_" + "w" * 10)
        body = browser.find_element("tag name", "body").text
        assert "403 forbidden" in body and not browser.find_elements("id", "trace")
        for url in (web.base, web.base + "?token=right_token_" + "r" * 9):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(url, timeout=5)
            assert err.value.code == 403
        ws = web.base.replace("http://", "ws://") + "ws"

        async def refused(url: str, **kw: Any) -> int:
            with pytest.raises(InvalidStatus) as exc:
                async with connect(url, **kw):
                    pass
            return exc.value.response.status_code

        assert asyncio.run(refused(ws + "?token=wrong_token_" + "w" * 10)) == 403
        assert asyncio.run(refused(ws)) == 403
        evil = {"origin": "http://evil.example"}
        assert asyncio.run(refused(ws + "?token=right_token_" + "r" * 10, **evil)) == 403  # type: ignore[arg-type]
        assert web.stop(signal.SIGTERM) == 0
