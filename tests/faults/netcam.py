"""A network camera for the fault tests: MJPEG over HTTP (`multipart/x-mixed-replace`, what IP webcams serve),
paced at the clip's frame rate, from a real talking-face clip looped.

    python -m tests.faults.netcam --port 8081 --clip clip.mpg     # prints "listening" when it accepts

It is a separate process so that a test can make the camera disappear the way cameras do: kill it (the TCP
connection drops mid-stream, new connections are refused) and start it again on the same port (it comes back).
What the camera shows is switched by lines on stdin, for every connected client at once:
  live     the clip (default)
  freeze   the last picture sent, again and again, bit for bit (a stuck sensor driver or encoder)
  black    black pictures with dark sensor noise (a covered lens)
Each JPEG is encoded once per distinct picture, so a frozen picture is the same bytes and decodes identically.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

BOUNDARY = b"qamoeframe"


class Camera:
    def __init__(self, clip: Path, fps: float) -> None:
        cap = cv2.VideoCapture(str(clip))
        self.frames: list[bytes] = []
        size = None
        while True:
            ok, image = cap.read()
            if not ok:
                break
            size = image.shape
            self.frames.append(cv2.imencode(".jpg", image)[1].tobytes())
        cap.release()
        if not self.frames or size is None:
            raise SystemExit(f"netcam: {clip} has no frames")
        # a covered lens: dark sensor noise, so no two pictures are the same (a frozen camera repeats them)
        rng = np.random.default_rng(0)
        self.black = [
            cv2.imencode(".jpg", rng.integers(0, 4, size, dtype=np.uint8))[1].tobytes() for _ in range(16)
        ]
        self.fps = fps
        self.mode = "live"
        self.t0 = time.monotonic()

    def picture(self, index: int, last: bytes | None) -> bytes:
        if self.mode == "freeze" and last is not None:
            return last
        if self.mode == "black":
            return self.black[index % len(self.black)]
        return self.frames[index % len(self.frames)]

    def serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(4096)  # the HTTP request: any path
                conn.sendall(
                    b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary="
                    + BOUNDARY
                    + b"\r\n\r\n"
                )
                last = None
                i = int((time.monotonic() - self.t0) * self.fps)
                while True:
                    last = self.picture(i, last)
                    head = b"--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % (
                        BOUNDARY,
                        len(last),
                    )
                    conn.sendall(head + last + b"\r\n")
                    i += 1
                    time.sleep(max(0.0, self.t0 + i / self.fps - time.monotonic()))
            except OSError:
                return  # the client went away


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--clip", type=Path, required=True)
    ap.add_argument("--fps", type=float, default=25.0)
    args = ap.parse_args()
    cam = Camera(args.clip, args.fps)
    server = socket.create_server(("127.0.0.1", args.port))  # SO_REUSEADDR: a restart gets the same port

    def accept() -> None:
        while True:
            conn, _ = server.accept()
            threading.Thread(target=cam.serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    print("listening", flush=True)
    for line in sys.stdin:
        mode = line.strip()
        if mode in ("live", "freeze", "black"):
            cam.mode = mode
            print(f"mode {mode}", flush=True)


if __name__ == "__main__":
    main()
