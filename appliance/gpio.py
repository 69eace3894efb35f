"""The answer button and the two LEDs on the front of the station.

Everything is optional; a pin number of 0 means "not fitted". Pins are BCM (GPIO)
numbers, not header positions.

* **Answer button** — a momentary push button between the GPIO pin and any ground
  pin (e.g. GPIO17 = header pin 11, ground = header pin 9). No resistor: the
  internal pull-up is used, so the pin reads low while the button is pressed.
  A short press answers a ring and does nothing else (it never hangs up, and never
  lets a knocking guest in); holding it for ``gpio.long_press_seconds`` declines
  the ring or hangs up the call.
* **Ring LED** — LED from the GPIO pin through a 330 Ω resistor to ground (long
  leg to the pin). Blinks while the station rings.
* **Camera-live LED** — wired the same way. Lit exactly while the station sends
  its camera and microphone, so people in the room can see when they are on air.

Example ``/etc/videostation/config.toml``::

    [gpio]
    button_pin = 17     # header pin 11, other leg to ground (pin 9)
    ring_led_pin = 27   # header pin 13, via 330 Ω to ground
    live_led_pin = 22   # header pin 15, via 330 Ω to ground

The pins are driven through gpiozero, which picks a driver by itself (lgpio on a
Pi 5 and current Raspberry Pi OS, RPi.GPIO on older ones). ``GPIOZERO_PIN_FACTORY=mock``
in the environment runs the whole thing against simulated pins. Without any
driver (a laptop, a container) the station keeps working without its button and
LEDs, logs one warning, and ``videostation doctor`` says what is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import Callable
from typing import Any

from gpiozero import LED, Button, Device, GPIOPinInUse, PinFactoryFallback, PinInvalidPin

from .config import GpioConfig
from .errors import HardwareError

log = logging.getLogger(__name__)

RING_BLINK_SECONDS = 0.5
"""On time and off time of the ring LED while ringing."""

_DRIVER_HINT = (
    "install a GPIO driver: on Raspberry Pi OS `sudo apt install python3-lgpio` "
    "(create the venv with --system-site-packages) or `pip install lgpio`; "
    "not a Raspberry Pi? set gpio.button_pin, gpio.ring_led_pin and gpio.live_led_pin to 0"
)
_PERMISSION_HINT = (
    "the service user cannot open /dev/gpiochip*: add it to the gpio group "
    "(`sudo usermod -aG gpio videostation`) and restart the service"
)


def _pins(config: GpioConfig) -> dict[str, int]:
    """The fitted pins by config key."""
    pins = {
        "button_pin": config.button_pin,
        "ring_led_pin": config.ring_led_pin,
        "live_led_pin": config.live_led_pin,
    }
    return {key: pin for key, pin in pins.items() if pin}


def _describe_pins(config: GpioConfig) -> str:
    def name(pin: int) -> str:
        return f"GPIO{pin}" if pin else "none"

    return (
        f"button on {name(config.button_pin)}, ring LED {name(config.ring_led_pin)}, "
        f"live LED {name(config.live_led_pin)}"
    )


def _load_pin_factory(pin_factory: Any | None) -> Any:
    """The given pin factory, else gpiozero's default one; HardwareError if none loads."""
    if pin_factory is not None:
        return pin_factory
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PinFactoryFallback)
        try:
            Device.ensure_pin_factory()
        except Exception as exc:  # any driver import or probe error means "no GPIO here"
            tried = "; ".join(
                str(w.message).removeprefix("Falling back from ")
                for w in caught
                if issubclass(w.category, PinFactoryFallback)
            )
            why = f"no GPIO driver could be loaded ({tried or exc})"
            raise HardwareError(why) from exc
    return Device.pin_factory


def _check_distinct(config: GpioConfig) -> None:
    seen: dict[int, str] = {}
    for key, pin in _pins(config).items():
        if pin in seen:
            raise HardwareError(f"gpio.{seen[pin]} and gpio.{key} are both GPIO{pin}")
        seen[pin] = key


def _open_devices(config: GpioConfig, pin_factory: Any | None) -> tuple[Any, Any, Any]:
    """Open (button, ring LED, live LED), None for each one not fitted.

    Every driver error is mapped to HardwareError here, so callers see only ours.
    """
    _check_distinct(config)
    factory = _load_pin_factory(pin_factory)
    opened: list[Any] = []
    current = 0
    try:
        button = ring = live = None
        if config.button_pin:
            current = config.button_pin
            button = Button(
                config.button_pin,
                pull_up=True,
                bounce_time=config.bounce_seconds or None,
                hold_time=config.long_press_seconds,
                pin_factory=factory,
            )
            opened.append(button)
        if config.ring_led_pin:
            current = config.ring_led_pin
            ring = LED(config.ring_led_pin, initial_value=False, pin_factory=factory)
            opened.append(ring)
        if config.live_led_pin:
            current = config.live_led_pin
            live = LED(config.live_led_pin, initial_value=False, pin_factory=factory)
            opened.append(live)
    # Drivers raise their own types (lgpio.error for "GPIO busy", OSError, ...),
    # not only gpiozero's, and none of them may stop the service.
    except Exception as exc:
        for device in opened:
            device.close()
        if isinstance(exc, PinInvalidPin):
            why = f"GPIO{current} does not exist on this board"
        elif isinstance(exc, GPIOPinInUse) or "busy" in str(exc).lower():
            why = f"GPIO{current} is in use by another program or device"
        else:
            why = f"cannot open GPIO{current}: {exc}"
        raise HardwareError(why) from exc
    return button, ring, live


class StationControls:
    """The answer button, the ring LED and the camera-live LED.

    ``on_press`` and ``on_long_press`` run on ``loop`` (gpiozero calls back from its
    own threads). A short press — released before ``long_press_seconds`` — calls
    ``on_press``; holding calls ``on_long_press`` once, as soon as the hold time
    is reached, and never ``on_press`` as well.

    If the pins cannot be opened the station carries on without them:
    :meth:`describe` starts with ``unavailable:`` and one warning is logged.

    A context manager: leaving the ``with`` block closes it (LEDs off, pins released).

    Example (as ``create_app`` wires it: ``spawn`` runs a coroutine on the loop)::

        with StationControls(config.gpio, loop=asyncio.get_running_loop(),
                             on_press=lambda: spawn(station.button_pressed()),
                             on_long_press=lambda: spawn(station.button_held())) as controls:
            controls.set_ringing(True)   # the ring LED blinks
    """

    def __init__(
        self,
        config: GpioConfig,
        *,
        loop: asyncio.AbstractEventLoop,
        on_press: Callable[[], None],
        on_long_press: Callable[[], None],
        pin_factory: Any | None = None,
    ) -> None:
        self._loop = loop
        self._on_press = on_press
        self._on_long_press = on_long_press
        self._button: Any = None
        self._ring_led: Any = None
        self._live_led: Any = None
        self._ringing = False
        self._live = False
        self._closed = False
        # Only touched on the loop: whether the button is down, and whether this
        # press has already counted as a long one.
        self._down = False
        self._long = False
        self._unavailable: str | None = None
        if not _pins(config):
            self._description = "no GPIO configured"
            return
        try:
            self._button, self._ring_led, self._live_led = _open_devices(config, pin_factory)
        except HardwareError as exc:
            self._unavailable = exc.message
            self._description = f"unavailable: {exc.message}"
            log.warning("GPIO button and LEDs disabled: %s", exc.message)
            return
        self._description = _describe_pins(config)
        if self._button is not None:
            self._button.when_pressed = self._pressed_in_thread
            self._button.when_released = self._released_in_thread
            self._button.when_held = self._held_in_thread

    # gpiozero threads --------------------------------------------------------------

    def _hop(self, callback: Callable[[], None]) -> None:
        # RuntimeError: the loop is already closed, the service is shutting down.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback)

    def _pressed_in_thread(self) -> None:
        self._hop(self._pressed)

    def _released_in_thread(self) -> None:
        self._hop(self._released)

    def _held_in_thread(self) -> None:
        self._hop(self._held)

    # event loop --------------------------------------------------------------------

    def _pressed(self) -> None:
        self._down = True
        self._long = False

    def _held(self) -> None:
        # A hold that raced with the release arrives after it: the press was short.
        if self._closed or not self._down or self._long:
            return
        self._long = True
        self._on_long_press()

    def _released(self) -> None:
        was_down, self._down = self._down, False
        if self._closed or not was_down or self._long:
            return
        self._on_press()

    # public ------------------------------------------------------------------------

    def set_ringing(self, ringing: bool) -> None:
        """Blink the ring LED while ``ringing``; off otherwise."""
        if self._closed or ringing == self._ringing:
            return
        self._ringing = ringing
        if self._ring_led is None:
            return
        if ringing:
            self._ring_led.blink(
                on_time=RING_BLINK_SECONDS, off_time=RING_BLINK_SECONDS, background=True
            )
        else:
            self._ring_led.off()

    def set_live(self, live: bool) -> None:
        """Light the camera-live LED while camera and microphone are sent."""
        if self._closed or live == self._live:
            return
        self._live = live
        if self._live_led is not None:
            self._live_led.value = live

    def __enter__(self) -> StationControls:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Turn the LEDs off and release the pins. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        # Closing only releases a pin (it floats as an input); switch the LEDs off
        # first so a stopped service does not leave "camera live" glowing.
        for led in (self._ring_led, self._live_led):
            if led is not None:
                led.off()
        for device in (self._button, self._ring_led, self._live_led):
            if device is not None:
                device.close()
        self._button = self._ring_led = self._live_led = None

    @property
    def has_live_led(self) -> bool:
        """A camera-live LED is fitted and open."""
        return self._live_led is not None

    @property
    def available(self) -> bool:
        """False when pins are configured but could not be opened."""
        return self._unavailable is None

    def describe(self) -> str:
        """One line for logs and ``doctor``: what is wired where, or why not."""
        return self._description


def probe_gpio(config: GpioConfig, *, pin_factory: Any | None = None) -> tuple[bool, str]:
    """Check that the configured pins can be opened, for ``videostation doctor``.

    Returns (ok, plain words on what was found and, if not ok, how to fix it). Run
    it with the service stopped: pins the running service holds are reported busy.
    """
    if not _pins(config):
        return True, (
            "no GPIO configured (set gpio.button_pin, gpio.ring_led_pin, "
            "gpio.live_led_pin to use a button and LEDs)"
        )
    try:
        devices = _open_devices(config, pin_factory)
    except HardwareError as exc:
        why = exc.message
        if why.startswith("no GPIO driver"):
            lowered = why.lower()
            hint = (
                _PERMISSION_HINT
                if "permission" in lowered or "gpiochip" in lowered
                else _DRIVER_HINT
            )
        elif "in use" in why:
            hint = (
                "stop whatever holds it (`sudo systemctl stop videostation` if it is the "
                "station itself) or pick another pin in the [gpio] section"
            )
        elif " and gpio." in why:
            hint = "give each of them its own pin in the [gpio] section"
        else:
            hint = "check the pin numbers in the [gpio] section (BCM numbers, not header pins)"
        return False, f"{why}; {hint}"
    for device in devices:
        if device is not None:
            device.close()
    return True, f"{_describe_pins(config)}: opened fine"
