"""The papermill engine ``mmrepro``: papermill's nbclient engine, minus a hang.

With nbclient 0.11 and no cell timeout, the client waits for each cell's reply with
``shell_channel.get_msg(timeout=None)``, and that wait can miss a reply that has already arrived
(jupyter/nbclient#312, seen here in cells that create ipywidgets). Then papermill and the kernel
both sit idle forever. This engine's client waits in one-second slices instead, so a reply that
arrived is always read. Everything else is papermill's ``nbclient`` engine.

``mmrepro run`` and ``mmrepro book`` use it; from the command line pass ``--engine mmrepro``
(it is registered as a ``papermill.engine`` entry point).
"""
from __future__ import annotations

from queue import Empty
from typing import Any

from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.log import logger
from papermill.utils import merge_kwargs, remove_args

POLL_SECONDS = 1.0


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
        kc = await super().async_start_new_kernel_client()
        patient(kc.shell_channel)
        return kc


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
