#!/usr/bin/env python3
"""A screenshot of the web view on a real-time replay (the README's docs/img/web_view.png).

  python tools/web_screenshot.py                                    # the demo clip (make demo), shipped model
  python tools/web_screenshot.py --video talk.mp4 --at 12 --out view.png
  python tools/web_screenshot.py --frames                           # with the camera frame (both opt-ins)

Runs `qamoe-live --video-file VIDEO` at real time with `qamoe-web` subscribed, opens the page in headless
Chromium (Debian's chromium + chromium-driver, driven by Selenium: the test extra), and saves the page `--at`
seconds after the first estimate arrived."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from edge.cli.liverun import LiveCommand, LiveRun, LiveRunError
from edge.cli.webrun import WebCommand, WebRun
from edge.publish.recorder import free_endpoint


def chromium(width: int, height: int):  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"  # the system browser: nothing is downloaded
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--hide-scrollbars",
    ):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", type=Path, default=REPO / "runs" / "demo" / "demo.mp4")
    p.add_argument("--engines-dir", type=Path, default=None, help="default: the shipped model in engines/")
    p.add_argument("--at", type=float, default=17.0, help="seconds after the first estimate (default 17)")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "web_view.png")
    p.add_argument("--size", default="1280x900", help="browser window, WxH (default 1280x900)")
    p.add_argument("--frames", action="store_true",
                   help="show the camera frame: qamoe-live --share-frames and qamoe-web --frames (both opt-in)")
    args = p.parse_args()
    if not args.video.is_file():
        print(
            f"web_screenshot: {args.video} not found: make it with `python tools/make_demo.py`",
            file=sys.stderr,
        )
        return 2
    width, height = (int(v) for v in args.size.split("x"))
    endpoint = free_endpoint()
    live = LiveCommand(
        ("--video-file", str(args.video), "--source-id", args.video.name,
         *(("--share-frames",) if args.frames else ())),
        engines_dir=args.engines_dir,
        endpoint=endpoint,
    )
    driver = chromium(width, height)
    try:
        with WebRun(WebCommand(endpoint, args=("--frames",) if args.frames else ())) as web, LiveRun(live, record=True) as run:
            driver.get(web.url)
            run.wait(lambda: run.of("sentiment"), 120, "a first estimate")
            time.sleep(args.at)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.out))
            run.stop()
            web.stop()
    except LiveRunError as exc:
        print(f"web_screenshot: {exc}", file=sys.stderr)
        return 1
    finally:
        driver.quit()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
