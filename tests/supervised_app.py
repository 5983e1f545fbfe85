"""A stand-in worker app for the supervisor tests (`test_service_workers`): its start-up waits
until the file named by ``LK_TEST_GATE`` exists, and fails if the file says ``fail``, so a
test decides when, and whether, a replacement worker becomes ready.

Run as a script, it is `SocketPerWorker` supervising two such workers on a free loopback port
(printed first), with the ready timeout given as its argument.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

GATE_ENV = "LK_TEST_GATE"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                gate = Path(os.environ[GATE_ENV])
                while not gate.exists():
                    await asyncio.sleep(0.05)
                if gate.read_text() == "fail":
                    await send({"type": "lifespan.startup.failed", "message": "gate says fail"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(os.getpid()).encode()})


if __name__ == "__main__":
    from uvicorn import Config

    from lightkeeper.service.workers import SocketPerWorker, shared_port_sockets

    sockets = shared_port_sockets("127.0.0.1", 0, 2)
    print(sockets[0].getsockname()[1], flush=True)
    config = Config("supervised_app:app", workers=2, log_level="info", lifespan="on")
    SocketPerWorker(config, sockets, ready_timeout=float(sys.argv[1])).run()
