#!/usr/bin/env python3
"""Bandwidth-limited TCP relay: emulates a WAN link in front of the origin.

All connections share one link of --rate bytes/s in the origin -> client
direction (a virtual clock reserves each chunk's transmission time on the
link, so concurrent connections split the bandwidth). The client -> origin
direction (request heads) is not limited. Optional --delay-ms adds a one-way
delay to the first bytes of each connection (connection set-up), default 0.

Listens on 127.0.0.1 only. Prints "relay ready PORT" on stdout once listening.
"""
import argparse
import asyncio
import time

CHUNK = 64 * 1024


class Link:
    """A virtual clock of the link's transmissions. A timer that fires late
    (a loaded box) is made up for by up to BURST seconds of credit, like the
    queue of a real link, so the average rate holds under load."""

    BURST = 0.05

    def __init__(self, rate):
        self.rate = float(rate)
        self.free_at = 0.0  # monotonic time the link is next idle

    async def transmit(self, n):
        now = time.monotonic()
        start = max(now - self.BURST, self.free_at)
        self.free_at = start + n / self.rate
        delay = self.free_at - now
        if delay > 0:
            await asyncio.sleep(delay)


async def pump(reader, writer, link):
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            if link is not None:
                await link.transmit(len(data))
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass


async def handle(creader, cwriter, args, link):
    try:
        if args.delay_ms:
            await asyncio.sleep(args.delay_ms / 1000.0)
        oreader, owriter = await asyncio.open_connection(args.target_host, args.target_port)
    except OSError:
        cwriter.close()
        return
    up = asyncio.create_task(pump(creader, owriter, None))
    down = asyncio.create_task(pump(oreader, cwriter, link))
    await down
    # The origin finished (or failed): end the client side, then the rest.
    up.cancel()
    for w in (cwriter, owriter):
        try:
            w.close()
        except OSError:
            pass


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen-port", type=int, required=True)
    ap.add_argument("--target-host", default="127.0.0.1")
    ap.add_argument("--target-port", type=int, required=True)
    ap.add_argument("--rate", type=float, default=100e6 / 8, help="bytes per second (default 100 Mbit/s)")
    ap.add_argument("--delay-ms", type=float, default=0.0)
    args = ap.parse_args()
    link = Link(args.rate)
    server = await asyncio.start_server(lambda r, w: handle(r, w, args, link), "127.0.0.1", args.listen_port,
                                        backlog=1024)
    print(f"relay ready {args.listen_port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
