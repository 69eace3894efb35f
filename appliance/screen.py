"""Display power: light the screen when the station rings, dark when nobody uses it.

The display is switched with ``wlopm`` (wlr-output-power-management), which works
under the labwc and cage Wayland compositors the kiosk runs in: ``wlopm --on '*'``
and ``wlopm --off '*'``. Install it with ``sudo apt install wlopm``. The service
must reach the compositor's Wayland socket: give it ``WAYLAND_DISPLAY`` (an
absolute socket path works, e.g. ``/run/user/1000/wayland-0``) and access to that
socket.

Example ``/etc/videostation/config.toml``::

    [screen]
    idle_blank_seconds = 300   # dark after 5 idle minutes; 0 keeps it on
    power_command = "wlopm"    # "" if the display has no power control
    output = "HDMI-A-1"        # or "*" for every output

The screen wakes on a ring and never blanks while it rings or a call runs. A
missing ``wlopm`` logs one warning; the station works on with the screen always on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil

from .config import ScreenConfig

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_SECONDS = 5.0
"""How long the power command may take before it is killed."""


class ScreenPower:
    """Wakes the display, and blanks it after ``idle_blank_seconds`` without activity.

    Create it on the event loop: the idle timer starts at once. Call :meth:`wake` on
    a ring, :meth:`activity` on a touch or a call state change; :meth:`hold` keeps
    the screen lit while ringing or in a call. Every failure of the power command is
    logged, never raised.

    Example::

        screen = ScreenPower(config.screen)   # in a cleanup_ctx, on the loop
        await screen.wake()                   # ringing: light it
        screen.hold(True)                     # and keep it lit
    """

    def __init__(self, config: ScreenConfig) -> None:
        self._idle = float(config.idle_blank_seconds)
        self._output = config.output or "*"
        self._name = config.power_command
        self._program: str | None = None
        self._unavailable: str | None = None
        if not config.power_command:
            self._unavailable = "no power command configured"
        else:
            self._program = shutil.which(config.power_command)
            if self._program is None:
                self._unavailable = f"{config.power_command} not found"
                # A development machine (no Wayland display) has no screen to switch:
                # one INFO line. A kiosk with a display and no power tool gets a warning.
                headless = not os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("DISPLAY")
                log.log(
                    logging.INFO if headless else logging.WARNING,
                    "screen power control disabled: %s (install it, e.g. `sudo apt install "
                    "wlopm`, or set screen.power_command)",
                    self._unavailable,
                )
        self._held = False
        self._blanked = False
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None
        self._blank_task: asyncio.Task[None] | None = None
        # Commands run one at a time, so "--off" can never overtake a later "--on".
        self._lock = asyncio.Lock()
        self._last_failure: str | None = None
        # Built on the event loop (the usual case), the idle timer runs from start-up,
        # so a station nobody touches goes dark without waiting for a first call.
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop()
            self._restart_timer()

    async def wake(self) -> None:
        """Switch the display on and restart the idle timer."""
        if self._closed:
            return
        await self._cancel_blank()
        self._blanked = False
        await self._run("--on")
        self._restart_timer()

    async def activity(self) -> None:
        """Someone is using the station: restart the idle timer (and light a dark screen)."""
        if self._closed:
            return
        if self._blanked or self._blank_task is not None:  # dark, or going dark
            await self.wake()
        else:
            self._restart_timer()

    def hold(self, held: bool) -> None:
        """While held (ringing, in a call) the screen is never blanked.

        Releasing the hold restarts the idle timer; it does not switch the screen on.
        """
        if self._closed:
            return
        self._held = held
        self._restart_timer()

    async def close(self) -> None:
        """Stop the idle timer; the display is left as it is. Safe to call twice."""
        self._closed = True
        self._cancel_timer()
        await self._cancel_blank()

    def describe(self) -> str:
        """One line for logs and ``doctor``."""
        if self._unavailable is not None:
            return f"unavailable: {self._unavailable} (the screen stays on)"
        blank = f"blank after {self._idle:g} s idle" if self._idle > 0 else "never blank"
        return f"{self._name} --on/--off {self._output}, {blank}"

    # idle timer ----------------------------------------------------------------------

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _restart_timer(self) -> None:
        self._cancel_timer()
        if self._closed or self._held or self._idle <= 0 or self._program is None:
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._idle, self._start_blank)

    def _start_blank(self) -> None:
        self._timer = None
        if self._held or self._closed or self._blank_task is not None:
            return
        self._blank_task = asyncio.get_running_loop().create_task(self._blank())

    async def _blank(self) -> None:
        try:
            await self._run("--off")
            self._blanked = True
        finally:
            self._blank_task = None

    async def _cancel_blank(self) -> None:
        task = self._blank_task
        if task is None or task is asyncio.current_task():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # the power command -----------------------------------------------------------------

    async def _run(self, switch: str) -> None:
        if self._program is None:
            return
        async with self._lock:
            await self._exec(self._program, switch)

    async def _exec(self, program: str, switch: str) -> None:
        argv = [program, switch, self._output]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError:
            self._program = None
            self._cancel_timer()
            self._unavailable = f"{program} not found"
            log.warning("screen power control disabled: %s disappeared", program)
            return
        except OSError as exc:
            self._failed(f"cannot run {program}: {exc}")
            return
        try:
            _, stderr = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT_SECONDS)
        except TimeoutError:
            await self._kill(proc)
            self._failed(f"{' '.join(argv)} took longer than {COMMAND_TIMEOUT_SECONDS:g} s")
            return
        except asyncio.CancelledError:
            await self._kill(proc)
            raise
        if proc.returncode != 0:
            why = stderr.decode(errors="replace").strip()[:200] or "no message"
            self._failed(f"{' '.join(argv)} failed with exit code {proc.returncode}: {why}")
            return
        self._last_failure = None
        log.debug("screen %s", "on" if switch == "--on" else "off")

    @staticmethod
    async def _kill(proc: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()

    def _failed(self, why: str) -> None:
        # The same failure on every ring would flood the journal: warn when it changes.
        if why != self._last_failure:
            log.warning("screen power: %s", why)
        else:
            log.debug("screen power: %s", why)
        self._last_failure = why
