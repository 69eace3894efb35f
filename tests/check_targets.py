"""``make check F=path``: the pytest arguments for one file's own tests, one per line.

A test file is its own target; ``appliance/<area>/<name>.py`` maps to
``tests/test_<area>_<name>.py`` (or ``tests/test_<name>.py``) and its doctests. Nothing
is printed for a file with no tests of its own (``make check`` then runs none).

>>> targets("appliance/call.py")
['tests/test_call.py', '--doctest-modules', 'appliance/call.py']
>>> targets("appliance/media/peer.py")
['tests/test_media_peer.py', '--doctest-modules', 'appliance/media/peer.py']
>>> targets("web/js/app.js")
[]
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def targets(path: str) -> list[str]:
    file = Path(path)
    if file.is_absolute():
        file = file.relative_to(REPO)
    if file.parts[:1] == ("tests",) and file.suffix == ".py":
        return [file.as_posix()]
    if file.parts[:1] != ("appliance",) or file.suffix != ".py":
        return []
    parts = [p for p in file.relative_to("appliance").with_suffix("").parts if p != "__init__"]
    names = [f"test_{'_'.join(parts)}.py", f"test_{parts[-1]}.py"] if parts else []
    found = [f"tests/{n}" for n in names if (REPO / "tests" / n).exists()][:1]
    return [*found, "--doctest-modules", file.as_posix()]


if __name__ == "__main__":
    print("\n".join(targets(sys.argv[1])))
