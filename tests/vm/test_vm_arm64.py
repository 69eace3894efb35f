"""The same VM tests on arm64 (the Pi's architecture) under qemu-system-aarch64/TCG.

The image build applies the role under qemu-user (see ``vmimage.packages_layer``);
``make test`` builds it beside the other tests and boots it after the x86_64 VM. Every
test is the x86_64 test, collected again here against an arm64 VM (its initramfs from
tiny-initramfs, root by kernel name: see ``vmimage.ARM64``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import test_vm_x86 as x86
from .vmimage import ARM64, VM

pytestmark = [
    pytest.mark.slow,
    pytest.mark.vm,
    pytest.mark.timeout(3600),
]


@pytest.fixture(scope="module")
def vm() -> Iterator[VM]:
    yield from x86.booted(ARM64)


# Collected in this order (the x86_64 module's order: faults after the two-minute
# check, the reboot last).
test_service_runs_as_notify_with_the_watchdog_armed = (
    x86.test_service_runs_as_notify_with_the_watchdog_armed
)
test_the_vm_runs_this_checkouts_application = x86.test_the_vm_runs_this_checkouts_application
test_health_answers_through_the_forwarded_port = x86.test_health_answers_through_the_forwarded_port
test_journal_carries_the_structured_fields = x86.test_journal_carries_the_structured_fields
test_kiosk_compositor_and_chromium_put_the_screen_in_the_station_room = (
    x86.test_kiosk_compositor_and_chromium_put_the_screen_in_the_station_room
)
test_kiosk_watchdog_restarts_a_lost_screen = x86.test_kiosk_watchdog_restarts_a_lost_screen
test_a_call_inside_the_vm_decodes_the_station_media = (
    x86.test_a_call_inside_the_vm_decodes_the_station_media
)
test_no_restart_over_two_minutes = x86.test_no_restart_over_two_minutes
test_security_score_inside_equals_offline = x86.test_security_score_inside_equals_offline
test_kill_9_restarts_and_state_survives = x86.test_kill_9_restarts_and_state_survives
test_blocked_event_loop_is_killed_by_the_watchdog = (
    x86.test_blocked_event_loop_is_killed_by_the_watchdog
)
test_first_boot_file_is_applied_once = x86.test_first_boot_file_is_applied_once
