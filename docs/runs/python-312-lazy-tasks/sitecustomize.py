"""An experiment, not part of the project: aiohttp's server tasks started lazily again.

On PYTHONPATH, for async_server.py only: from Python 3.12 aiohttp starts each connection's
and each request's task with eager_start=True (web_protocol.py); here that flag is dropped,
so every task waits its turn in the loop's queue, as under Python 3.11.
"""
import sys

if sys.argv and sys.argv[0].endswith("async_server.py") and sys.version_info >= (3, 12):
    import asyncio
    import types

    import aiohttp.web_protocol as web_protocol

    class LazyTask(asyncio.Task):
        def __init__(self, coro, *, loop=None, name=None, context=None, eager_start=False):
            super().__init__(coro, loop=loop, name=name, context=context)

    lazy = types.ModuleType("asyncio_lazy_tasks")
    lazy.__dict__.update(vars(asyncio))
    lazy.Task = LazyTask
    lazy.create_task = lambda coro, **kw: LazyTask(coro, loop=asyncio.get_running_loop(),
                                                   **{k: v for k, v in kw.items() if k != "eager_start"})
    web_protocol.asyncio = lazy
    print("sitecustomize: aiohttp's tasks start lazily (eager_start dropped)", file=sys.stderr)
