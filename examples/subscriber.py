"""The smallest qamoe-live consumer: pyzmq and json only. Start `qamoe-live`, then run
`python examples/subscriber.py [tcp://127.0.0.1:5556]`. Message fields: docs/messages.md."""

import json
import sys

import zmq

sub = zmq.Context().socket(zmq.SUB)
sub.connect(sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:5556")
sub.setsockopt(zmq.SUBSCRIBE, b"qamoe.v1.sentiment")
try:
    while True:
        topic, data = sub.recv_multipart()
        msg = json.loads(data)
        if msg["valid"]:  # repr() keeps control characters in the transcript from reaching the terminal
            print(f"#{msg['seq']} valence {msg['valence']:+.2f} {msg['polarity']:<8} {msg['transcript']!r}")
        else:
            print(f"#{msg['seq']} invalid window: {msg['invalid_reason']!r}")
except KeyboardInterrupt:
    pass
