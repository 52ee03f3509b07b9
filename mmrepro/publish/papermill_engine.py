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
With a progress bar (``progress_bar=True``, as ``mmrepro run`` asks), the bar names the section being
run. Everything else is papermill's ``nbclient`` engine.

``mmrepro run`` and ``mmrepro book`` use it; from the command line pass ``--engine mmrepro``
(it is registered as a ``papermill.engine`` entry point).
"""
from __future__ import annotations

import re
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


def sections(cells: list[Any]) -> list[str]:
    """For each cell, the title of the section it is in: the last Markdown heading (``#`` to ``###``) at
    or before it ("" before the first)."""
    titles, current = [], ""
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            for line in cell.get("source", "").splitlines():
                if re.match(r"^#{1,3} ", line):
                    current = line.lstrip("#").strip()
        titles.append(current)
    return titles


def follow_sections(nb_man: Any, width: int = 40) -> None:
    """Show the section being run in the description of papermill's progress bar (when there is one)."""
    bar = getattr(nb_man, "pbar", None)
    if not bar or getattr(bar, "disable", False):  # none, or switched off (TQDM_DISABLE)
        return
    titles, start, name = sections(nb_man.nb.cells), nb_man.cell_start, getattr(bar, "desc", "")

    def cell_start(cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
        start(cell, cell_index, **kwargs)
        title = titles[cell_index] if cell_index is not None and cell_index < len(titles) else ""
        if nb_man.pbar and title:
            title = title if len(title) <= width else title[: width - 1] + "…"
            nb_man.pbar.set_description(f"{name} · {title}" if name else title)

    nb_man.cell_start = cell_start


class PatientEngine(NBClientEngine):
    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None, stderr_file=None,
                                 start_timeout=60, execution_timeout=None, **kwargs):
        """As :meth:`papermill.engines.NBClientEngine.execute_managed_notebook`, with :class:`PatientClient`
        and the progress bar (if any) naming the section being run."""
        follow_sections(nb_man)
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(safe_kwargs, timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
                                    startup_timeout=start_timeout, kernel_name=kernel_name, log=logger,
                                    log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file)
        return PatientClient(nb_man, **final_kwargs).execute()


ENGINE = "mmrepro"
papermill_engines.register(ENGINE, PatientEngine)
