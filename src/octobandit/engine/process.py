"""Starting, watching and stopping the engine process (see :mod:`octobandit.engine.server`)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from types import TracebackType

from octobandit.engine.server import PRIVATE_DIR_PREFIX
from octobandit.errors import StorageUnusable

log = logging.getLogger("octobandit.engine")


class EngineProcess:
    """The engine process of a service: started by :meth:`start`, restarted if it dies,
    stopped (after it finishes the work at hand and checkpoints) by :meth:`stop`.

    Its settings come from the environment (``OCTOBANDIT_*``); it listens on
    :attr:`socket`, a Unix socket in a private temporary directory.
    """

    def __init__(self, *, ready_timeout: float = 60.0) -> None:
        self.ready_timeout = ready_timeout
        self.directory = tempfile.mkdtemp(prefix=PRIVATE_DIR_PREFIX)
        self.socket = os.path.join(self.directory, "engine.sock")
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._failure: str | None = None
        self._watcher: threading.Thread | None = None

    def start(self) -> EngineProcess:
        """Start the process and wait until it answers; :class:`StorageUnusable` if it cannot."""
        # one long-lived thread starts (and restarts) the process: the process is told
        # to stop when the thread that started it ends (Linux PR_SET_PDEATHSIG)
        self._watcher = threading.Thread(target=self._watch, name="octobandit-engine", daemon=True)
        self._watcher.start()
        self._started.wait()
        if self._failure is not None:
            self.stop()
            raise StorageUnusable(self._failure)
        return self

    def stop(self) -> None:
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=5)
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> EngineProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "octobandit.engine.server", self.socket],
            stderr=subprocess.PIPE,
            start_new_session=True,  # a terminal's Ctrl-C reaches the service, which stops us
        )

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> str | None:
        """``None`` once the socket answers, else why the process could not start."""
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                err = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace")
                lines = [line for line in err.splitlines() if line.strip()]
                return lines[-1].removeprefix("octobandit: ") if lines else "exited"
            with socket.socket(socket.AF_UNIX) as probe, contextlib.suppress(OSError):
                probe.connect(self.socket)
                return None
            time.sleep(0.02)
        return f"the engine process did not start within {self.ready_timeout:g} s"

    def _watch(self) -> None:
        first = True
        while not self._stopping.is_set():
            proc = self._proc = self._spawn()
            failure = self._wait_ready(proc)
            if first:
                first = False
                self._failure = failure
                self._started.set()
                if failure is not None:
                    return
            threading.Thread(target=_relay, args=(proc,), daemon=True).start()
            code = proc.wait()
            if self._stopping.is_set():
                return
            log.error("the engine process exited (%s): restarting it", code)
            time.sleep(0.5)


def _relay(proc: subprocess.Popen[bytes]) -> None:
    """Copy the engine process's log lines to ours."""
    if proc.stderr is None:
        return
    for line in proc.stderr:
        sys.stderr.write(line.decode(errors="replace"))
