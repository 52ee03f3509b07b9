"""The papermill engine ``mmrepro``: papermill's nbclient engine, minus a hang and a start-up race.

With nbclient 0.11 and no cell timeout, the client waits for each cell's reply with
``shell_channel.get_msg(timeout=None)``, and that wait can miss a reply that has already arrived
(jupyter/nbclient#312, seen here in cells that create ipywidgets). Then papermill and the kernel
both sit idle forever. This engine's client waits in one-second slices instead, so a reply that
arrived is always read.

A kernel picks free TCP ports and binds them only once it runs; two kernels started at the same
moment by different processes (`mmrepro book` runs the chapters side by side) can pick the same
port, and one dies before it answers ("Address already in use"). A kernel that dies before
replying is started again on fresh ports, up to :data:`START_TRIES` times.
Everything else is papermill's ``nbclient`` engine.

``mmrepro run`` and ``mmrepro book`` use it; from the command line pass ``--engine mmrepro``
(it is registered as a ``papermill.engine`` entry point).
"""
from __future__ import annotations

from queue import Empty
from typing import Any

from nbclient.util import run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.log import logger
from papermill.utils import merge_kwargs, remove_args

POLL_SECONDS = 1.0
START_TRIES = 3


def patient(channel: Any) -> None:
    """Make ``channel.get_msg(timeout=None)`` wait in slices of :data:`POLL_SECONDS`."""
    get = channel.get_msg

    async def get_msg(timeout: float | None = None) -> dict:
        if timeout is not None:
            return await get(timeout=timeout)
        while True:
            try:
                return await get(timeout=POLL_SECONDS)
            except Empty:
                continue

    channel.get_msg = get_msg


class PatientClient(PapermillNotebookClient):
    async def async_start_new_kernel_client(self) -> Any:
        for attempt in range(1, START_TRIES + 1):
            try:
                kc = await super().async_start_new_kernel_client()
                break
            except RuntimeError as err:  # nbclient has stopped and cleaned up the dead kernel
                if "died before replying" not in str(err) or attempt == START_TRIES:
                    raise
                logger.warning(f"the kernel died before it answered ({err}); starting it again")
                self.km = self.create_kernel_manager()
                await self.async_start_new_kernel()
        patient(kc.shell_channel)
        return kc

    # nbclient binds its synchronous wrapper (what papermill calls) to its own coroutine: rebind it here
    start_new_kernel_client = run_sync(async_start_new_kernel_client)


class PatientEngine(NBClientEngine):
    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None, stderr_file=None,
                                 start_timeout=60, execution_timeout=None, **kwargs):
        """As :meth:`papermill.engines.NBClientEngine.execute_managed_notebook`, with :class:`PatientClient`."""
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(safe_kwargs, timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
                                    startup_timeout=start_timeout, kernel_name=kernel_name, log=logger,
                                    log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file)
        return PatientClient(nb_man, **final_kwargs).execute()


ENGINE = "mmrepro"
papermill_engines.register(ENGINE, PatientEngine)
