"""The Ansible role applied for real into Debian 12 roots, shared by this folder's tests.

``provisioned`` debootstraps a root (cached as a tarball under
``/var/cache/videostation-tests``) for this machine's architecture and for arm64 (the
Pi's, under qemu-user-static), chroots into it and applies the role twice through
``image/apply-role`` -- the same hook the image build runs in its chroot -- with the
Pi-only steps off. It is session-scoped: the role tests (test_ansible.py) and the
station served from the role's own venv (test_role_station.py) share one root per
architecture (one xdist group each, so two workers never build it twice).

The amd64 root is the bare debootstrap with every optional piece on (TLS, coturn, a
button, a rotated screen): the role installs everything and its second run must change
nothing. The arm64 root is the arm64 VM image's system stage (``tests/vm/vmimage.py``):
the role applied once under emulation on the VM's packages layer, cached by the role's
inputs, with this checkout's application installed into it -- the role is applied under
emulation at most once per run, and not at all when ``ansible/``, ``systemd/``,
``image/`` and the dependency lists are unchanged. Its second, idempotence run under
emulation (about 6 minutes) runs in ``make test-nightly`` (``VIDEOSTATION_NIGHTLY=1``).
The tests read what to expect from the root's own variables (``provisioned["vars"]``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
import yaml

from .rootfs import HOST_ARCH, Chroot, apply_role, copy_checkout, debian_root, need

TEST_UID = 870
TURN_SECRET = "turn-secret-for-tests"
METRICS_TOKEN = "metrics-token-for-role-tests-0123456789"


CHROOT_VARS: dict[str, object] = {
    "videostation_pi": False,
    "videostation_manage_services": False,
    "videostation_source": "/usr/src/videostation",
    "videostation_uid": TEST_UID,
    "videostation_station_name": "Test station",
    "videostation_public_url": "https://station.example.net",
    # TLS files (not there: the service is not started) make the kiosk
    # load its page from the loopback-only listener (kiosk_port).
    "videostation_tls_cert": "/etc/videostation/tls/fullchain.pem",
    "videostation_tls_key": "/etc/videostation/tls/privkey.pem",
    "videostation_button_pin": 17,
    "videostation_display_rotation": 90,
    "videostation_master_password": "correct horse battery staple",
    "videostation_metrics_tokens": [METRICS_TOKEN],
    "videostation_coturn_enabled": True,
    "videostation_turn_secret": TURN_SECRET,
    "videostation_firstboot_enabled": True,
}


@pytest.fixture(scope="session", params=["amd64", "arm64"])
def provisioned(request: pytest.FixtureRequest) -> Iterator[dict[str, object]]:
    """The role applied into a Debian 12 root: this machine's architecture (twice, with
    every optional piece on), and arm64 (the Pi's) under qemu-user-static, where
    Raspberry Pi OS only pieces are skipped exactly as on any plain Debian."""
    arch: str = request.param
    need(arch)  # registers qemu-user with binfmt_misc for arm64
    if arch == HOST_ARCH:
        yield from _applied_here(arch)
    else:
        yield from _arm64_system_stage(arch)


def _applied_here(arch: str) -> Iterator[dict[str, object]]:
    started = time.monotonic()
    with debian_root(arch=arch) as chroot:
        root = chroot.root
        copy_checkout(root / "usr/src/videostation")
        (root / "usr/src/test-vars.yml").write_text(yaml.safe_dump(CHROOT_VARS))
        first_output, first, first_seconds = apply_role(chroot)
        second_output, second, second_seconds = apply_role(chroot)
        yield {
            "chroot": chroot,
            "root": root,
            "first": first,
            "second": second,
            "first_output": first_output,
            "second_output": second_output,
            "arch": arch,
            "vars": CHROOT_VARS,
            "twice": True,
            "timings": {
                "until_first_run": round(
                    time.monotonic() - started - first_seconds - second_seconds
                ),
                "first_run": round(first_seconds),
                "second_run": round(second_seconds),
            },
        }


def _arm64_system_stage(arch: str) -> Iterator[dict[str, object]]:
    """The arm64 VM image's system stage: the role applied once under emulation on the
    VM's packages layer (cached by the role's inputs, shared with ``tests/vm``), then
    this checkout's application installed into it as the image build installs it. The
    record of the apply that built the stage comes with it."""
    from ..vm.vmimage import ARM64, install_application, system_record, system_stage

    started = time.monotonic()
    stage = system_stage(ARM64)
    record = system_record(stage)
    with debian_root(arch=arch, tarball=stage) as chroot:
        root = chroot.root
        install_application(root, chroot, root.parent)
        second_output, second, second_seconds = "", None, 0.0
        # read here: the tests' autouse fixture scrubs VIDEOSTATION_* from their environment
        twice = twice_emulated()
        if twice:
            second_output, second, second_seconds = apply_role(chroot)
        yield {
            "chroot": chroot,
            "root": root,
            "first": record["counts"],
            "second": second,
            "first_output": record["output"],
            "second_output": second_output,
            "arch": arch,
            "vars": record["vars"],
            "twice": twice,
            "timings": {
                "until_tests": round(time.monotonic() - started - second_seconds),
                "first_run": record["seconds"],
                "second_run": round(second_seconds),
            },
        }


def twice_emulated() -> bool:
    """Whether the role's second (idempotence) run is applied under emulation too."""
    return os.environ.get("VIDEOSTATION_NIGHTLY") == "1"


def provisioned_chroot(provisioned: dict[str, object]) -> Chroot:
    chroot = provisioned["chroot"]
    assert isinstance(chroot, Chroot)
    return chroot
