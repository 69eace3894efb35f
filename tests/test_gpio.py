"""The answer button and LEDs, driven through gpiozero's mock pin factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from appliance.config import GpioConfig
from appliance.gpio import RING_BLINK_SECONDS, StationControls, probe_gpio

BUTTON, RING, LIVE = 17, 27, 22
WIRED = GpioConfig(
    button_pin=BUTTON,
    ring_led_pin=RING,
    live_led_pin=LIVE,
    long_press_seconds=0.3,
    bounce_seconds=0,
)


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    factory = MockFactory()
    yield factory
    factory.reset()


@pytest.fixture
def no_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine where gpiozero finds no pin driver (a laptop, a container)."""

    def fail() -> None:
        raise ImportError("Unable to load any default pin factory!")

    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.setattr(Device, "_default_pin_factory", staticmethod(fail))


class Presses:
    def __init__(self) -> None:
        self.short = 0
        self.long = 0

    def press(self) -> None:
        self.short += 1

    def long_press(self) -> None:
        self.long += 1


def controls(config: GpioConfig, factory: MockFactory | None, presses: Presses) -> StationControls:
    """Controls on the running loop; use ``with``, so that a failing test still
    releases its pins."""
    return StationControls(
        config,
        loop=asyncio.get_running_loop(),
        on_press=presses.press,
        on_long_press=presses.long_press,
        pin_factory=factory,
    )


async def test_short_press_calls_on_press(factory: MockFactory) -> None:
    presses = Presses()
    with controls(WIRED, factory, presses):
        pin = factory.pin(BUTTON)

        pin.drive_low()
        await asyncio.sleep(0.05)
        pin.drive_high()
        await asyncio.sleep(0.05)

        assert (presses.short, presses.long) == (1, 0)


async def test_long_press_calls_on_long_press_only_once(factory: MockFactory) -> None:
    presses = Presses()
    with controls(WIRED, factory, presses):
        pin = factory.pin(BUTTON)

        pin.drive_low()
        await asyncio.sleep(WIRED.long_press_seconds * 3)  # long enough for a repeat, if any
        assert (presses.short, presses.long) == (0, 1)  # fires while still held
        pin.drive_high()
        await asyncio.sleep(0.05)

        assert (presses.short, presses.long) == (0, 1)


async def test_presses_after_a_long_press_count_again(factory: MockFactory) -> None:
    presses = Presses()
    with controls(WIRED, factory, presses):
        pin = factory.pin(BUTTON)

        pin.drive_low()
        await asyncio.sleep(WIRED.long_press_seconds + 0.15)
        pin.drive_high()
        await asyncio.sleep(0.05)
        pin.drive_low()
        await asyncio.sleep(0.05)
        pin.drive_high()
        await asyncio.sleep(0.05)

        assert (presses.short, presses.long) == (1, 1)


async def test_callbacks_run_on_the_event_loop(factory: MockFactory) -> None:
    loop = asyncio.get_running_loop()
    seen: list[asyncio.AbstractEventLoop] = []
    with StationControls(
        WIRED,
        loop=loop,
        on_press=lambda: seen.append(asyncio.get_running_loop()),
        on_long_press=lambda: seen.append(asyncio.get_running_loop()),
        pin_factory=factory,
    ):
        pin = factory.pin(BUTTON)
        pin.drive_low()
        await asyncio.sleep(WIRED.long_press_seconds + 0.15)  # long press: from the hold thread
        pin.drive_high()
        pin.drive_low()
        pin.drive_high()  # short press: from this thread's pin callback
        await asyncio.sleep(0.05)

        assert seen == [loop, loop]


async def test_ring_led_blinks_while_ringing_and_is_off_after(factory: MockFactory) -> None:
    with controls(WIRED, factory, Presses()) as station:
        led = factory.pin(RING)
        led.clear_states()

        station.set_ringing(True)
        await asyncio.sleep(RING_BLINK_SECONDS * 2.5)
        changes = [s.state for s in led.states[1:]]
        assert changes[:3] == [True, False, True]  # on, off, on again: blinking

        station.set_ringing(False)
        await asyncio.sleep(RING_BLINK_SECONDS * 1.5)
        assert led.state is False


async def test_live_led_follows_set_live(factory: MockFactory) -> None:
    with controls(WIRED, factory, Presses()) as station:
        led = factory.pin(LIVE)
        assert led.state is False

        station.set_live(True)
        assert led.state is True
        station.set_live(False)
        assert led.state is False


async def test_a_failing_test_still_releases_its_pins(factory: MockFactory) -> None:
    """The with block closes on an exception too: the next test's pins are free."""
    with pytest.raises(AssertionError), controls(WIRED, factory, Presses()) as station:
        station.set_live(True)
        raise AssertionError("a test that fails half-way")
    assert factory.pin(LIVE).state is False
    with controls(WIRED, factory, Presses()) as again:
        assert again.available


async def test_close_is_idempotent_and_turns_leds_off(factory: MockFactory) -> None:
    presses = Presses()
    with controls(WIRED, factory, presses) as station:
        station.set_live(True)
        station.set_ringing(True)
    station.close()  # again, after the with block: harmless

    assert factory.pin(LIVE).state is False
    assert factory.pin(RING).state is False
    station.set_live(True)  # after close: ignored, not an error
    station.set_ringing(True)
    factory.pin(BUTTON).drive_low()
    factory.pin(BUTTON).drive_high()
    await asyncio.sleep(0.05)
    assert (presses.short, presses.long) == (0, 0)


async def test_pins_are_released_on_close(factory: MockFactory) -> None:
    with controls(WIRED, factory, Presses()) as first:
        assert first.available
    with controls(WIRED, factory, Presses()) as second:
        assert second.available


async def test_no_pins_configured_is_fine(no_driver: None) -> None:
    with controls(GpioConfig(), None, Presses()) as station:
        station.set_ringing(True)
        station.set_live(True)

    assert station.available
    assert station.describe() == "no GPIO configured"


async def test_only_some_parts_fitted(factory: MockFactory) -> None:
    config = GpioConfig(button_pin=BUTTON, ring_led_pin=RING)
    with controls(config, factory, Presses()) as station:
        station.set_live(True)  # no live LED: nothing to light, no error
        station.set_ringing(True)

        assert station.describe() == "button on GPIO17, ring LED GPIO27, live LED none"


async def test_without_a_pin_driver_degrades_with_one_warning(
    no_driver: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="appliance.gpio")

    with controls(WIRED, None, Presses()) as station:
        station.set_ringing(True)
        station.set_live(True)

    assert not station.available
    assert station.describe().startswith("unavailable: no GPIO driver")
    assert len(caplog.records) == 1
    assert "no GPIO driver" in caplog.records[0].getMessage()


async def test_pin_in_use_degrades(factory: MockFactory) -> None:
    with (
        controls(WIRED, factory, Presses()) as holder,
        controls(WIRED, factory, Presses()) as second,
    ):
        assert holder.available
        assert second.describe() == "unavailable: GPIO17 is in use by another program or device"


async def test_same_pin_twice_degrades(factory: MockFactory) -> None:
    config = GpioConfig(button_pin=BUTTON, ring_led_pin=BUTTON)
    with controls(config, factory, Presses()) as station:
        expected = "unavailable: gpio.button_pin and gpio.ring_led_pin are both GPIO17"
        assert station.describe() == expected


def test_probe_reports_nothing_configured() -> None:
    ok, message = probe_gpio(GpioConfig())
    assert ok
    assert "no GPIO configured" in message


def test_probe_opens_and_releases_the_pins(factory: MockFactory) -> None:
    ok, message = probe_gpio(WIRED, pin_factory=factory)
    assert ok, message
    assert message == "button on GPIO17, ring LED GPIO27, live LED GPIO22: opened fine"
    ok, _ = probe_gpio(WIRED, pin_factory=factory)  # released: opens again
    assert ok


def test_probe_without_driver_says_how_to_fix(no_driver: None) -> None:
    ok, message = probe_gpio(WIRED)
    assert not ok
    assert "no GPIO driver" in message
    assert "lgpio" in message


def test_probe_reports_a_busy_pin(factory: MockFactory) -> None:
    from gpiozero import Button

    with Button(LIVE, pin_factory=factory):
        ok, message = probe_gpio(WIRED, pin_factory=factory)
    assert not ok
    assert message.startswith("GPIO22 is in use")


def test_probe_reports_a_pin_the_board_lacks(factory: MockFactory) -> None:
    ok, message = probe_gpio(GpioConfig(button_pin=60), pin_factory=factory)
    assert not ok
    assert message.startswith("GPIO60 does not exist on this board")
