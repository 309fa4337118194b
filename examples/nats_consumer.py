"""A durable JetStream consumer of every node's sentiment: python examples/nats_consumer.py [URL] [NAME].
The server keeps its position: stop it, start it again, and it resumes where it stopped (docs/FLEET.md)."""

import asyncio
import json
import sys

import nats


async def main(url: str = "nats://127.0.0.1:4222", name: str = "dashboard") -> None:
    js = (await nats.connect(url)).jetstream()
    sub = await js.pull_subscribe("qamoe.v1.sentiment.>", durable=name, stream="QAMOE")
    while True:
        try:
            batch = await sub.fetch(100, timeout=5)
        except nats.errors.TimeoutError:
            continue
        for msg in batch:
            m = json.loads(msg.data)
            print(msg.subject.split(".", 3)[3], m["seq"], m["valence"], m["polarity"], repr(m["transcript"]))
            await msg.ack()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
