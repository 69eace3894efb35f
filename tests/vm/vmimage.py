"""Build and boot virtual machines of the appliance for the VM tests.

An image is the project's cached debootstrap root (``tests/provisioning/rootfs.py``) plus a
kernel, systemd-sysv and udev, with the Ansible role applied in the chroot exactly as
the image build applies it, then written to a raw ext4 file with ``mkfs.ext4 -d``
(no loop mounts). Test-only additions, never part of a station: a command agent
(``agent.py``) on TCP 7000 inside the VM, ``grim`` for
screenshots, systemd-networkd for QEMU's user network, and a first-boot file.

Images are cached under ``$VIDEOSTATION_TEST_CACHE`` (``/var/cache/videostation-tests``)
in three stages, like pi-gen's stages, each built in a temp dir and renamed, under a lock
(two builders wait for one build), each keyed by what goes into it:

1. the packages layer (:func:`packages_layer`): the debootstrap root, the kernel and every
   Debian package the role installs, keyed by the package lists;
2. the system stage (:func:`system_stage`): the role applied on the layer and the test
   parts added, keyed by :func:`system_key` (``ansible/``, ``systemd/``, ``image/``, the
   agent, the dependency lists): most commits leave it alone;
3. the image (``vm-image-v4-<arch>-<hash>/``, :func:`image`): the system stage with this
   checkout's wheel installed the way the role's install task installs it
   (:func:`install_application`), written out by ``mkfs.ext4``; keyed by the system
   stage and the application's files (``appliance/``, ``web/``, ``pyproject.toml``).

The arm64 chroot tests (``tests/provisioning``) start from the same packages layer.
``python -m tests.vm.vmimage arm64`` builds an image ahead of the tests (``make test``
does so for arm64 beside the other tests). Each boot runs on a throw-away qcow2 overlay,
so the cached image is never modified. Guests run under TCG (KVM guests hang on this machine) with
``-nic user,restrict=on``: the only ways in are host-loopback port forwards and the
guest cannot reach any other address.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..conftest import free_port
from ..provisioning.rootfs import (
    CACHE,
    REPO,
    TAR_OPTIONS,
    Chroot,
    ansible_core_spec,
    apply_role,
    base_tarball,
    base_tarball_path,
    cache_lock,
    copy_checkout,
    mount_points,
    unavailable,
    unpack,
)
from ..provisioning.rootfs import run as _run

HERE = Path(__file__).resolve().parent
AGENT_PORT = 7000
SERVICE_PORT = 8080
ROLE_PASSWORD = "role-password-for-vm-tests"
METRICS_TOKEN = "metrics-token-for-role-tests-0123456789"
FIRSTBOOT_PASSWORD = "first-boot-password"
FIRSTBOOT_NAME = "VM station"
FIRSTBOOT_HOSTNAME = "vm-station"
# Bump when the build steps below change (the key also hashes every repository input).
BUILD_VERSION = "v4"
# Bump when the system stage's own steps change (rebuilds the stages, not the layers).
SYSTEM_VERSION = "s2"
TEST_PACKAGES = ("systemd-sysv", "udev", "dbus", "grim", "procps")


@dataclass(frozen=True)
class Arch:
    name: str
    debian: str
    kernel_package: str
    qemu: str
    machine: tuple[str, ...]
    console: str
    initramfs: str
    """The package that builds the kernel's initramfs in the image."""
    root: str
    """The kernel's ``root=`` (and what goes with it)."""
    display: tuple[str, ...]


X86_64 = Arch(
    "x86_64",
    "amd64",
    "linux-image-amd64",
    "qemu-system-x86_64",
    ("-accel", "tcg", "-cpu", "max"),
    "ttyS0",
    "initramfs-tools",
    "root=LABEL=root",
    # One display device: with QEMU's default VGA beside it, wlroots also tries the
    # second card and logs that it cannot share buffers with it (PRIME).
    ("-vga", "none", "-device", "virtio-gpu-pci"),
)
ARM64 = Arch(
    "arm64",
    "arm64",
    "linux-image-arm64",
    "qemu-system-aarch64",
    # The Raspberry Pi 4's own core. "max" adds pointer authentication, whose QARMA
    # signing TCG emulates at great cost on every kernel call: the VM booted in 118 s
    # with it, 61 s as a Cortex-A72 (kernel 12.4 s -> 2.7 s).
    ("-M", "virt", "-cpu", "cortex-a72", "-accel", "tcg"),
    "ttyAMA0",
    # initramfs-tools' mkinitramfs runs for many minutes under qemu-user; tiny-initramfs
    # (a static init and the three modules the root needs) takes seconds. It finds the
    # root by kernel name or UUID only, not by label.
    "tiny-initramfs",
    "root=/dev/vda rootfstype=ext4",
    ("-device", "virtio-gpu-pci"),
)
TINY_INITRAMFS_CONF = (
    "# tests/vm/vmimage.py: the modules to mount the VM's root, nothing detected from\n"
    "# the build machine.\nAUTO_MODULES=no\nINCLUDE_MODULES=virtio_pci,virtio_blk,ext4\n"
)


# What a station's system is made of: the role, the units and files it installs, the
# image hooks, the test agent. A change here rebuilds the system stage (the role applied).
SYSTEM_DIRS = ("ansible", "systemd", "image")
# What the application is made of: a change here only reinstalls the wheel.
APP_DIRS = ("appliance", "web")


# Not part of a station's system: the relay's role and playbook (docs/relay.md).
NOT_THE_STATION = (REPO / "ansible/relay.yml", REPO / "ansible/roles/videostation_relay")


def _files(*tops: str) -> list[Path]:
    files: list[Path] = []
    for top in tops:
        files += sorted(
            p
            for p in (REPO / top).rglob("*")
            if p.is_file()
            and "__pycache__" not in p.parts
            and not any(p == other or other in p.parents for other in NOT_THE_STATION)
        )
    return files


def _dependency_lists() -> bytes:
    """The project's dependency lists: the role's pip install resolves them in the
    system stage; the version and the rest of pyproject.toml are the application's."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    project = pyproject["project"]
    wanted = {
        "build-system": pyproject.get("build-system"),
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies"),
    }
    return json.dumps(wanted, sort_keys=True).encode()


def _digest(seed: str, files: list[Path], extra: bytes = b"") -> str:
    digest = hashlib.sha256(seed.encode())
    for path in files:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    digest.update(extra)
    return digest.hexdigest()[:16]


def system_key(arch: Arch) -> str:
    """The system stage's name: the packages layer, the role and what it installs from
    the checkout besides the application, the dependency lists."""
    inputs = [HERE / "agent.py", *_files(*SYSTEM_DIRS)]
    digest = _digest(BUILD_VERSION + SYSTEM_VERSION + layer_key(arch), inputs, _dependency_lists())
    return f"vm-system-{BUILD_VERSION}-{arch.name}-{digest}.tar.zst"


def image_key(arch: Arch) -> str:
    """The bootable image's name: its system stage and the application's files."""
    inputs = [REPO / "pyproject.toml", REPO / "docs/operators.md", *_files(*APP_DIRS)]
    return f"vm-image-{BUILD_VERSION}-{arch.name}-{_digest(system_key(arch), inputs)}"


@dataclass(frozen=True)
class Image:
    directory: Path
    arch: Arch
    built_seconds: float | None  # None: taken from the cache

    @property
    def disk(self) -> Path:
        return self.directory / "root.img"

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"


def _test_vars() -> dict[str, Any]:
    return {
        "videostation_pi": False,
        "videostation_manage_services": False,
        "videostation_source": "/usr/src/videostation",
        "videostation_station_name": "Role station",
        "videostation_master_password": ROLE_PASSWORD,
        "videostation_metrics_tokens": [METRICS_TOKEN],
        "videostation_firstboot_enabled": True,
        # QEMU's virtio-gpu without virgl has no GL: wlroots' GLES renderer would run on
        # Mesa's kms_swrast, which crashes here; software rendering in compositor and
        # browser instead (the role's settings for a station without a GPU driver).
        "videostation_kiosk_renderer": "pixman",
        "videostation_kiosk_extra_flags": "--disable-gpu",
    }


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _enable(root: Path, unit: str, target: str) -> None:
    wants = root / "etc/systemd/system" / f"{target}.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / unit
    if not link.exists():
        candidates = [root / "etc/systemd/system" / unit, root / "lib/systemd/system" / unit]
        found = next(c for c in candidates if c.exists())
        link.symlink_to("/" + str(found.relative_to(root)))


def _add_test_parts(root: Path, arch: Arch) -> None:
    lib = root / "usr/local/lib/videostation-test"
    lib.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "agent.py", lib / "agent.py")
    _write(
        root / "etc/systemd/system/videostation-test-agent.service",
        "# Test-only: the VM tests' command agent (tests/vm/agent.py). Never on a station.\n"
        "[Unit]\nDescription=Video Station VM test agent\nAfter=network.target\n\n"
        "[Service]\nExecStart=/usr/bin/python3 /usr/local/lib/videostation-test/agent.py\n"
        "Restart=always\n\n[Install]\nWantedBy=multi-user.target\n",
    )
    _enable(root, "videostation-test-agent.service", "multi-user.target")
    _write(
        root / "etc/systemd/network/20-eth0.network",
        "[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n",
    )
    _enable(root, "systemd-networkd.service", "multi-user.target")
    _write(root / "etc/fstab", "LABEL=root / ext4 rw,errors=remount-ro 0 1\n")
    _write(root / "etc/hostname", "role-station\n")
    # The station's sound card: the kernel's loopback card (snd-aloop) stands in for the
    # Pi's USB microphone and speaker. (QEMU's HDA card records with arecord, but
    # PipeWire 0.3.65 got no samples from it: the echo-cancel source stayed silent.)
    _write(
        root / "etc/modules-load.d/videostation-test-sound.conf",
        "# Test-only (tests/vm/vmimage.py): a sound card for PipeWire in the VM.\nsnd-aloop\n",
    )
    # No serial getty fighting over the console we log.
    (root / "etc/systemd/system/serial-getty@.service").symlink_to("/dev/null")
    # The first-boot file, where the image puts it (the Pi's boot partition).
    _write(
        root / "boot/firmware/videostation.txt",
        f"# written by tests/vm/vmimage.py\r\nSTATION_NAME={FIRSTBOOT_NAME}\r\n"
        f"HOSTNAME={FIRSTBOOT_HOSTNAME}\r\nPASSWORD={FIRSTBOOT_PASSWORD}\r\n",
    )
    (root / "usr/sbin/policy-rc.d").unlink(missing_ok=True)


ANSIBLE_VENV = "/opt/videostation-ansible"  # image/apply-role's default
STATION_PREFIX = "/opt/videostation"  # the role's videostation_prefix


def _role_packages() -> list[str]:
    """The Debian packages the role installs with the test variables (not on a Pi)."""
    defaults = yaml.safe_load((REPO / "ansible/roles/videostation/defaults/main.yml").read_text())
    return [*defaults["videostation_packages"], *defaults["videostation_debian_packages"]]


def layer_key(arch: Arch) -> str:
    """The packages layer's name: everything that goes into it, and nothing of ours."""
    parts = [
        BUILD_VERSION,
        base_tarball_path(arch=arch.debian).name,
        arch.initramfs,
        arch.kernel_package,
        TINY_INITRAMFS_CONF,
        *TEST_PACKAGES,
        *_role_packages(),
        ansible_core_spec(),
    ]
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
    return f"vm-layer-{BUILD_VERSION}-{arch.name}-{digest}.tar.zst"


class _Root:
    """A root being built under ``CACHE/work``, its chroot mounts, removed on exit."""

    def __init__(self, name: str) -> None:
        (CACHE / "work").mkdir(parents=True, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(dir=CACHE / "work", prefix=f"{name}-"))
        self.path = self.workdir / "root"
        self.path.mkdir()
        self.chroot = Chroot(self.path)

    def __enter__(self) -> _Root:
        return self

    def __exit__(self, *exc: object) -> None:
        self.chroot.unmount_all()
        mounted = [m for m in mount_points() if m == self.workdir or self.workdir in m.parents]
        if not mounted:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def mount(self) -> None:
        """/proc, /sys, /dev, a private apt archive (hard links to the shared cache's
        .debs: apt locks its archive dir, so a build never waits on another test's
        chroot) and the shared pip cache."""
        chroot = self.chroot
        chroot.bind(Path("/proc"), "/proc")
        chroot.bind(Path("/sys"), "/sys")
        chroot.bind(Path("/dev"), "/dev")
        chroot.bind(Path("/dev/pts"), "/dev/pts")
        archives = self.workdir / "archives"
        (archives / "partial").mkdir(parents=True)
        for deb in (CACHE / "apt-archives").glob("*.deb"):
            os.link(deb, archives / deb.name)
        chroot.bind(archives, "/var/cache/apt/archives")
        (CACHE / "pip").mkdir(parents=True, exist_ok=True)
        chroot.bind(CACHE / "pip", "/var/cache/pip")


def packages_layer(arch: Arch) -> Path:
    """The debootstrap root with the kernel, the test packages, every package the role
    installs and the role's ansible-core, as a cached tarball.

    Only a download-and-unpack cache: the role is still applied in full on top of it
    (its apt task then finds the packages there, as on a Raspberry Pi OS image that
    ships most of them). Under arm64 emulation it saves the role's three slowest
    minutes; nothing of the project's own goes into it.
    """
    target = CACHE / layer_key(arch)
    with cache_lock(target.name):
        if not target.exists():
            _build_layer(arch, target)
    return target


def _build_layer(arch: Arch, target: Path) -> None:
    reason = unavailable(arch.debian)  # registers qemu-user with binfmt_misc for arm64
    if reason:
        raise RuntimeError(f"cannot build the {arch.name} packages layer here: {reason}")
    for stale in CACHE.glob(f"vm-layer-*-{arch.name}-*"):
        stale.unlink(missing_ok=True)
    with _Root(target.name) as root:
        base = base_tarball(arch=arch.debian)
        _run(["tar", "-C", str(root.path), "-xzf", str(base)], timeout=300)
        policy = root.path / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        shutil.copy("/etc/resolv.conf", root.path / "etc/resolv.conf")
        local_cas = Path("/usr/local/share/ca-certificates")
        if local_cas.is_dir() and any(local_cas.iterdir()):
            shutil.copytree(
                local_cas, root.path / "usr/local/share/ca-certificates", dirs_exist_ok=True
            )
            root.chroot.run("update-ca-certificates")
        root.mount()
        root.chroot.run("apt-get", "update", "-qq", timeout=600)
        if arch.initramfs == "tiny-initramfs":
            _write(root.path / "etc/tiny-initramfs/tiny-initramfs.conf", TINY_INITRAMFS_CONF)
        root.chroot.run(
            "apt-get", "install", "-y", "-qq", "--no-install-recommends",
            arch.initramfs, arch.kernel_package, *TEST_PACKAGES, *_role_packages(),
            timeout=3600,
        )  # fmt: skip
        root.chroot.run("python3", "-m", "venv", ANSIBLE_VENV, timeout=600)
        root.chroot.run(
            f"{ANSIBLE_VENV}/bin/pip", "install", "--quiet", "--disable-pip-version-check",
            ansible_core_spec(), timeout=1800,
        )  # fmt: skip
        root.chroot.run("apt-get", "clean")
        root.chroot.unmount_all()
        partial = root.workdir / "layer.tar.zst"
        _run(
            ["tar", "-C", str(root.path), *TAR_OPTIONS, "--numeric-owner", "-cf", str(partial),
             "."],
            timeout=900,
        )  # fmt: skip
        partial.rename(target)


def system_stage(arch: Arch) -> Path:
    """The packages layer with the role applied as the image build applies it and the
    test parts added, as a cached tarball keyed by :func:`system_key`: what only a
    change of the role, the units, the image hooks or the dependency lists rebuilds."""
    target = CACHE / system_key(arch)
    with cache_lock(target.name):
        if not target.exists():
            _build_system_stage(arch, target)
    return target


def system_record(stage: Path) -> dict[str, Any]:
    """What the role's apply that built ``stage`` printed and counted (the arm64 chroot
    tests check the apply whose root they examine)."""
    return dict(json.loads(stage.with_name(stage.name + ".json").read_text()))


def _build_system_stage(arch: Arch, target: Path) -> None:
    layer = packages_layer(arch)
    for stale in CACHE.glob(f"vm-system-*-{arch.name}-*"):  # 1 GB each: keep the newest
        stale.unlink(missing_ok=True)
    with _Root(target.name) as built:
        root, chroot = built.path, built.chroot
        unpack(layer, root)
        shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
        built.mount()
        copy_checkout(root / "usr/src/videostation")
        (root / "usr/src/test-vars.yml").write_text(yaml.safe_dump(_test_vars()))
        output, counts, seconds = apply_role(chroot, timeout=900 if arch is X86_64 else 5400)
        chroot.run("apt-get", "clean")
        chroot.unmount_all()
        _add_test_parts(root, arch)
        partial = built.workdir / "system.tar.zst"
        _run(
            ["tar", "-C", str(root), *TAR_OPTIONS, "--numeric-owner", "-cf", str(partial), "."],
            timeout=900,
        )
        record = {"output": output, "counts": counts, "seconds": round(seconds)}
        record["vars"] = _test_vars()
        target.with_name(target.name + ".json").write_text(json.dumps(record))
        partial.rename(target)


def _source_checksum_command() -> str:
    """The role's own command for the source version it records (install.yml)."""
    tasks = yaml.safe_load((REPO / "ansible/roles/videostation/tasks/install.yml").read_text())
    task = next(t for t in tasks if t["name"] == "Checksum the source directory")
    return str(task["ansible.builtin.shell"]["cmd"])


def build_wheel(out: Path) -> Path:
    """This checkout's wheel, built from a clean copy (nothing written into the tree)."""
    source = out / "src"
    copy_checkout(source)
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        capture_output=True,
        timeout=600,
    )
    shutil.rmtree(source)
    return next(out.glob("videostation-*.whl"))


def install_application(root: Path, chroot: Chroot, workdir: Path) -> None:
    """Put this checkout's application into a system stage the way the role's install
    task does: the checkout at the role's source path, the wheel into the role's venv,
    the source version recorded where the role records it (a later role run in the VM
    then finds it installed), the operator docs beside the venv.

    The dependency lists are part of :func:`system_key`, so the venv already has every
    dependency: only our package is reinstalled (``--no-deps``; ``--force-reinstall``
    since its version string does not change between commits)."""
    source = root / "usr/src/videostation"
    shutil.rmtree(source)
    copy_checkout(source)
    wheel = build_wheel(workdir / "wheel")
    shutil.copy(wheel, root / "tmp" / wheel.name)
    chroot.run(
        f"{STATION_PREFIX}/venv/bin/pip", "install", "--no-input", "--upgrade",
        "--upgrade-strategy", "only-if-needed", "--force-reinstall", "--no-deps",
        f"/tmp/{wheel.name}",
        env={"PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        timeout=1800,
    )  # fmt: skip
    (root / "tmp" / wheel.name).unlink()
    checksum = chroot.run(
        "/bin/bash", "-c", f"cd /usr/src/videostation && {_source_checksum_command()}"
    ).stdout.strip()
    assert len(checksum) == 64, checksum
    (root / STATION_PREFIX.lstrip("/") / "installed-source").write_text(
        f"/usr/src/videostation {checksum}\n"
    )
    shutil.copy(REPO / "docs/operators.md", root / STATION_PREFIX.lstrip("/") / "docs")


def _build(arch: Arch, target: Path) -> None:
    system = system_stage(arch)
    with _Root(target.name) as built:
        root, chroot = built.path, built.chroot
        unpack(system, root)
        built.mount()
        install_application(root, chroot, built.workdir)
        chroot.unmount_all()
        target_tmp = built.workdir / "image"
        target_tmp.mkdir()
        kernel = max((root / "boot").glob("vmlinuz-*"))
        initrd = max((root / "boot").glob("initrd.img-*"))
        shutil.copy(kernel, target_tmp / "vmlinuz")
        shutil.copy(initrd, target_tmp / "initrd.img")
        used = int(
            subprocess.run(
                ["du", "-sxm", str(root)], capture_output=True, text=True, check=True
            ).stdout.split()[0]
        )
        size_mb = used + 1536
        _run(
            [
                "mkfs.ext4",
                "-q",
                "-L",
                "root",
                "-d",
                str(root),
                str(target_tmp / "root.img"),
                f"{size_mb}M",
            ],
            timeout=900,
        )
        target_tmp.rename(target)


def image(arch: Arch) -> Image:
    """The cached image for ``arch``, built first if the inputs changed: the system
    stage only when the system did (:func:`system_key`), else only the application."""
    target = CACHE / image_key(arch)
    with cache_lock(target.name):
        if target.is_dir():
            return Image(target, arch, None)
        for stale in CACHE.glob(f"vm-image-*-{arch.name}-*"):  # 2 GB each: keep the newest
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        started = time.monotonic()
        _build(arch, target)
        return Image(target, arch, time.monotonic() - started)


class AgentError(AssertionError):
    pass


class VM:
    """One booted VM on a throw-away overlay, its serial console in ``console_log``."""

    def __init__(self, img: Image, workdir: Path, *, memory_mb: int = 3072) -> None:
        self.image = img
        self.workdir = workdir
        self.console_log = workdir / "console.log"
        self.overlay = workdir / "overlay.qcow2"
        self.http_port = free_port()
        self.agent_port = free_port()
        self.memory_mb = memory_mb
        self.process: subprocess.Popen[bytes] | None = None
        self.boot_seconds: list[float] = []

    def command(self) -> list[str]:
        arch = self.image.arch
        forwards = (
            f"hostfwd=tcp:127.0.0.1:{self.http_port}-:{SERVICE_PORT},"
            f"hostfwd=tcp:127.0.0.1:{self.agent_port}-:{AGENT_PORT}"
        )
        return [
            arch.qemu,
            *arch.machine,
            "-smp", "2",
            "-m", str(self.memory_mb),
            "-kernel", str(self.image.kernel),
            "-initrd", str(self.image.initrd),
            "-append", " ".join((
                arch.root, "rw", f"console={arch.console}", "net.ifnames=0",
                # The image's /etc is complete: no locale/time zone prompts on the console.
                "systemd.firstboot=off",
            )),
            "-drive", f"file={self.overlay},format=qcow2,if=virtio",
            "-nic", f"user,model=virtio-net-pci,restrict=on,{forwards}",
            *arch.display,
            "-display", "none",
            "-serial", f"file:{self.console_log}",
            "-monitor", "none",
        ]  # fmt: skip

    def start(self) -> None:
        _run(
            [
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                "raw",
                "-b",
                str(self.image.disk),
                str(self.overlay),
            ],
            timeout=60,
        )
        self._launch()

    def _launch(self) -> None:
        started = time.monotonic()
        self.process = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        self.wait_agent(started)

    def wait_agent(self, started: float, timeout: float = 600) -> None:
        while time.monotonic() - started < timeout:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AgentError(f"qemu exited {self.process.returncode}:\n{self.console_tail()}")
            try:
                if self.sh("systemctl is-system-running --wait || true", timeout=300).rc >= 0:
                    self.boot_seconds.append(time.monotonic() - started)
                    return
            except OSError:
                time.sleep(2)
        raise AgentError(f"no agent after {timeout}s:\n{self.console_tail()}")

    def console_tail(self, chars: int = 6000) -> str:
        try:
            return self.console_log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def run(self, *argv: str, stdin: str = "", timeout: float = 120) -> Result:
        request = json.dumps({"argv": list(argv), "stdin": stdin, "timeout": timeout}).encode()
        with socket.create_connection(("127.0.0.1", self.agent_port), timeout=timeout + 30) as sock:
            sock.sendall(request + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    raise ConnectionResetError("agent closed the connection")
                data += chunk
        answer = json.loads(data)
        return Result(answer["rc"], answer["stdout"], answer["stderr"])

    def sh(self, script: str, *, stdin: str = "", timeout: float = 120) -> Result:
        return self.run("/bin/sh", "-c", script, stdin=stdin, timeout=timeout)

    def check(self, script: str, *, stdin: str = "", timeout: float = 120) -> str:
        result = self.sh(script, stdin=stdin, timeout=timeout)
        assert result.rc == 0, f"{script!r} -> {result.rc}\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def push(self, path: str, text: str) -> None:
        self.check(f"mkdir -p $(dirname {path}) && cat > {path}", stdin=text)

    def read_file(self, path: str) -> bytes:
        return base64.b64decode(self.check(f"base64 -w0 {path}"))

    def reboot(self) -> None:
        """Reboot inside the guest; QEMU restarts the same kernel on the same disk."""
        self.sh("rm -f /run/videostation-test-booted; systemctl reboot", timeout=30)
        started = time.monotonic()
        deadline = started + 300
        # Wait until the old system is gone (the agent stops answering or a new boot id).
        old = self.boot_id_cached
        while time.monotonic() < deadline:
            try:
                if self.sh("cat /proc/sys/kernel/random/boot_id", timeout=10).stdout.strip() != old:
                    break
            except OSError:
                break
            time.sleep(1)
        self.wait_agent(started)

    @property
    def boot_id(self) -> str:
        self.boot_id_cached = self.check("cat /proc/sys/kernel/random/boot_id").strip()
        return self.boot_id_cached

    boot_id_cached = ""

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(OSError):
            self.sh("systemctl poweroff", timeout=10)
        try:
            self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        self.process = None


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str


def tools_missing(arch: Arch) -> str | None:
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot, mkfs.ext4 -d)"
    for tool in ("debootstrap", "chroot", "mount", "mkfs.ext4", "qemu-img", arch.qemu):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def main(argv: list[str]) -> int:
    """``python -m tests.vm.vmimage ARCH...``: build (or find) the images, say how long."""
    arches = {a.name: a for a in (X86_64, ARM64)}
    for name in argv or ["x86_64"]:
        started = time.monotonic()
        system_stage(arches[name])
        stage = time.monotonic() - started
        built = image(arches[name])
        how = "cached" if built.built_seconds is None else f"built in {built.built_seconds:.0f} s"
        print(
            f"VM image {name}: {built.directory.name} (system stage {stage:.0f} s, "
            f"application {how}, {time.monotonic() - started:.0f} s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
