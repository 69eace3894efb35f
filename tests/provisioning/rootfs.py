"""Debian roots for the provisioning tests: debootstrap, cached tarballs, chroots.

A root is debootstrapped once per (architecture, suite, mirror, package list) and kept
as a tarball under ``/var/cache/videostation-tests`` (``VIDEOSTATION_TEST_CACHE``),
built atomically (temp + rename). Each test unpacks it into a scratch directory,
bind-mounts /proc, /sys, /dev and the apt and pip download caches, and removes it
afterwards -- never through a bind mount.

arm64 roots run through qemu-user-static and binfmt_misc (the Raspberry Pi's
architecture on this x86 machine).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..helpers import skip_or_fail

REPO = Path(__file__).resolve().parent.parent.parent
CACHE = Path(os.environ.get("VIDEOSTATION_TEST_CACHE", "/var/cache/videostation-tests"))
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def mirror() -> str:
    """The Debian mirror this machine's apt uses."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for match in re.finditer(r"^URIs:\s*(\S+)", text, re.MULTILINE):
            if "security" not in match.group(1) and "/debian" in match.group(1):
                return match.group(1)
        one_line = r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\b"
        for match in re.finditer(one_line, text, re.MULTILINE):
            return match.group(1)
    return "http://deb.debian.org/debian"


def unavailable(arch: str = HOST_ARCH) -> str | None:
    """Why a root of ``arch`` cannot be built and entered here, or None."""
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot, mount)"
    for tool in ("debootstrap", "chroot", "mount", "umount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if arch != HOST_ARCH:
        qemu = {"arm64": "qemu-aarch64"}.get(arch, f"qemu-{arch}")
        if not Path(f"/usr/bin/{qemu}-static").exists() and not Path(f"/usr/bin/{qemu}").exists():
            return f"{qemu}-static is missing (apt-get install qemu-user-static binfmt-support)"
        registered = Path("/proc/sys/fs/binfmt_misc") / qemu
        if not registered.exists():
            enable_binfmt(qemu)
        if not registered.exists() or "enabled" not in registered.read_text():
            return f"binfmt_misc has no enabled {qemu} entry (update-binfmts --enable {qemu})"
    return None


def enable_binfmt(qemu: str) -> None:
    """Mount binfmt_misc if it is empty and register qemu through binfmt-support."""
    misc = Path("/proc/sys/fs/binfmt_misc")
    if not (misc / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(misc)], check=False)
    if shutil.which("update-binfmts"):
        subprocess.run(["update-binfmts", "--enable", qemu], capture_output=True, check=False)


def need(arch: str = HOST_ARCH) -> None:
    """Skip (or under CI=true fail) when a root of ``arch`` cannot be built here."""
    reason = unavailable(arch)
    if reason:
        skip_or_fail(f"provisioning test cannot run here: {reason}")


def run(cmd: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), check=True, text=True, **kwargs)  # type: ignore[call-overload, no-any-return]


@contextlib.contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """Hold an exclusive lock on a cache entry while it is looked for or built: two
    pytest workers (or a worker and the image builder beside them) that want the same
    root wait for one build instead of making it twice."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


def base_tarball(
    packages: Sequence[str] = BASE_PACKAGES, *, arch: str = HOST_ARCH, version: str = "v2"
) -> Path:
    """A debootstrapped minbase Debian 12 with ``packages``, cached across runs."""
    tarball = base_tarball_path(packages, arch=arch, version=version)
    with cache_lock(tarball.name):
        if not tarball.exists():
            _debootstrap(tarball, packages, arch=arch, source=mirror())
    return tarball


def base_tarball_path(
    packages: Sequence[str] = BASE_PACKAGES, *, arch: str = HOST_ARCH, version: str = "v2"
) -> Path:
    """Where :func:`base_tarball` keeps that root (nothing is built)."""
    arch_part = "" if arch == "amd64" else f"{arch}-"  # amd64 keeps the existing cache name
    key = re.sub(
        r"[^A-Za-z0-9]+", "-", f"{version}-{arch_part}{SUITE}-{mirror()}-{'-'.join(packages)}"
    )
    return CACHE / f"{key}.tar.gz"


def _debootstrap(tarball: Path, packages: Sequence[str], *, arch: str, source: str) -> None:
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        root = Path(tmp) / "root"
        result = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--arch={arch}",
                f"--include={','.join(packages)}",
                SUITE,
                str(root),
                source,
            ],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if result.returncode:
            log = root / "debootstrap/debootstrap.log"
            tail = log.read_text()[-4000:] if log.exists() else ""
            raise AssertionError(f"debootstrap failed: {result.stderr[-4000:]}\n{tail}")
        for deb in (root / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        partial = Path(tmp) / "base.tar.gz"
        run(["tar", "-C", str(root), "-czf", str(partial), "."], timeout=600)
        partial.rename(tarball)


def chroot_env() -> dict[str, str]:
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
        # pip brings its own CA bundle: point it at the system's.
        "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt",
        "REQUESTS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt",
        "PIP_CACHE_DIR": "/var/cache/pip",
    }
    env.update({k: v for k, v in os.environ.items() if k.lower().endswith("_proxy")})
    return env


def mount_points() -> list[Path]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        field = line.split()[4]
        points.append(Path(field.encode().decode("unicode_escape")))
    return points


class Chroot:
    """A Debian root with /proc, /sys, /dev and the download caches mounted.

    ``nice``: what runs inside runs at this niceness. An emulated root's work (qemu-user,
    a core for many minutes) runs at 19 beside the other tests, which keep the CPU when
    they want it."""

    def __init__(self, root: Path, *, nice: int = 0) -> None:
        self.root = root
        self.nice = nice
        self.mounts: list[Path] = []

    def bind(self, source: Path, target: str, *, fstype: str | None = None) -> None:
        where = self.root / target.lstrip("/")
        where.mkdir(parents=True, exist_ok=True)
        if fstype:
            run(["mount", "-t", fstype, fstype, str(where)])
        else:
            run(["mount", "--bind", str(source), str(where)])
        self.mounts.append(where)

    def make_root_a_mount_point(self) -> None:
        """Bind the root onto itself (private), as / is a mount point on every real
        machine: ``ip netns exec`` remounts / as a slave and fails in a plain chroot."""
        run(["mount", "--bind", str(self.root), str(self.root)])
        run(["mount", "--make-private", str(self.root)])
        self.mounts.append(self.root)

    def unmount_all(self) -> None:
        # What ran inside may have mounted more (``ip netns add`` mounts /run/netns):
        # those go first, deepest first, then ours in reverse order.
        ours = set(self.mounts)
        inside = [m for m in mount_points() if self.root in m.parents and m not in ours]
        for where in sorted(set(inside), key=lambda p: len(p.parts), reverse=True):
            subprocess.run(["umount", "-l", str(where)], capture_output=True)
        for where in reversed(self.mounts):
            if subprocess.run(["umount", str(where)], capture_output=True).returncode:
                subprocess.run(["umount", "-l", str(where)], capture_output=True)
        self.mounts.clear()

    def command(self, *cmd: str) -> list[str]:
        niced = ["nice", "-n", str(self.nice)] if self.nice else []
        return [*niced, "chroot", str(self.root), *cmd]

    def run(
        self,
        *cmd: str,
        env: dict[str, str] | None = None,
        timeout: float = 600,
        check: bool = True,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*cmd),
            input=input,
            env={**chroot_env(), **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )


def _keep_debs(archives: Path, cache: Path) -> None:
    """Link the .debs a root downloaded into the shared cache (atomically, by rename)."""
    for deb in archives.glob("*.deb"):
        if (cache / deb.name).exists():
            continue
        partial = cache / f".{deb.name}.{os.getpid()}"
        try:
            os.link(deb, partial)
            partial.rename(cache / deb.name)
        except OSError:
            partial.unlink(missing_ok=True)


def copy_checkout(dest: Path) -> None:
    ignore = shutil.ignore_patterns(
        ".git",
        ".venv",
        "var",
        "__pycache__",
        "*.egg-info",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        "node_modules",
        ".artifacts",
        "build",
        "dist",
    )
    shutil.copytree(REPO, dest, ignore=ignore, symlinks=True)


# File capabilities (xattrs) kept both ways in the .tar.zst roots of tests/vm/vmimage.py.
TAR_OPTIONS = ("--zstd", "--xattrs", "--xattrs-include=*")


def unpack(tarball: Path, root: Path) -> None:
    """Unpack a cached root: a debootstrap ``.tar.gz`` or a ``.tar.zst`` layer."""
    options = TAR_OPTIONS if tarball.name.endswith(".tar.zst") else ("-z",)
    run(["tar", "-C", str(root), *options, "-xf", str(tarball)], timeout=900)


@contextlib.contextmanager
def debian_root(
    packages: Sequence[str] = BASE_PACKAGES,
    *,
    arch: str = HOST_ARCH,
    version: str = "v2",
    tarball: Path | None = None,
) -> Iterator[Chroot]:
    """A fresh copy of the cached root, mounted; unmounted and removed afterwards.

    ``tarball``: start from this cached root (e.g. the VM's packages layer) instead of
    the debootstrapped one of ``packages``."""
    need(arch)
    if tarball is None:
        tarball = base_tarball(packages, arch=arch, version=version)
    (CACHE / "work").mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(dir=CACHE / "work"))
    root = workdir / "root"
    root.mkdir()
    chroot = Chroot(root, nice=19 if arch != HOST_ARCH else 0)
    try:
        unpack(tarball, root)
        # Nothing starts services inside the chroot.
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
        # debootstrap writes no /etc/hosts; every installed Debian has one naming localhost.
        hosts = root / "etc/hosts"
        if not hosts.exists():
            hosts.write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
        # Machines behind a TLS-inspecting proxy: the chroot trusts what the host trusts.
        local_cas = Path("/usr/local/share/ca-certificates")
        if local_cas.is_dir() and any(local_cas.iterdir()):
            shutil.copytree(local_cas, root / "usr/local/share/ca-certificates", dirs_exist_ok=True)
            chroot.run("update-ca-certificates", timeout=900)
        chroot.make_root_a_mount_point()
        chroot.bind(Path("/proc"), "/proc")
        chroot.bind(Path("/sys"), "/sys")
        chroot.bind(Path("/dev"), "/dev")
        chroot.bind(Path("/dev/pts"), "/dev/pts")
        # Download caches shared by every root (.debs and wheels name their architecture).
        # The .debs are hard-linked in and new ones linked back afterwards rather than
        # bind-mounted: apt locks its archives directory, and other roots run apt too.
        debs = CACHE / "apt-archives"
        archives = root / "var/cache/apt/archives"
        (archives / "partial").mkdir(parents=True, exist_ok=True)
        debs.mkdir(parents=True, exist_ok=True)
        for deb in debs.glob("*.deb"):
            with contextlib.suppress(OSError):
                os.link(deb, archives / deb.name)
        (CACHE / "pip").mkdir(parents=True, exist_ok=True)
        chroot.bind(CACHE / "pip", "/var/cache/pip")
        yield chroot
    finally:
        chroot.unmount_all()
        _keep_debs(root / "var/cache/apt/archives", CACHE / "apt-archives")
        # Never rm -rf through a bind mount (/dev, /proc of this machine).
        mounted = [m for m in mount_points() if m == workdir or workdir in m.parents]
        if mounted:
            print(f"left {workdir} in place: still mounted: {mounted}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


RECAP = re.compile(
    r"^localhost\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


def ansible_core_spec() -> str:
    """The pip requirement of this controller's ansible-core: a chroot runs the same."""
    import ansible

    return f"ansible-core=={ansible.__version__}"


def apply_role(chroot: Chroot, timeout: float = 3600) -> tuple[str, dict[str, int], float]:
    """``image/apply-role`` in ``chroot`` (the checkout copied to /usr/src/videostation,
    the variables in /usr/src/test-vars.yml): its output, recap counts and wall time."""
    started = time.monotonic()
    result = chroot.run(
        "/usr/src/videostation/image/apply-role",
        "-e",
        "@/usr/src/test-vars.yml",
        env={
            "KEEP_ANSIBLE": "1",
            "ANSIBLE_CORE_SPEC": ansible_core_spec(),
        },
        timeout=timeout,  # the default leaves room for arm64 under emulation
        check=False,
    )
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20000:]
    match = RECAP.search(output)
    assert match, output[-5000:]
    return output, {k: int(v) for k, v in match.groupdict().items()}, elapsed
