"""Config validation (appliance/config.py): a bad file or flag stops the start with an
error that names the key, and the defaults run a station on a laptop."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.config import Config, as_dict, from_mapping, load
from appliance.errors import ConfigError


def test_the_defaults_run_on_a_laptop() -> None:
    config = load(Path(os.devnull))
    assert config == Config()
    # auto: the Pi camera or a V4L2 one if there is one, else the moving test pattern
    assert (config.camera.source, config.microphone.source) == ("auto", "auto")
    assert config.server.port == 8080 and config.station.room_id == "station"


def test_a_file_and_flags_combine_and_flags_win(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[station]\nname = "Front door"\n\n[server]\nport = 9000\n')
    config = load(path, {"server.port": 9100, "server.host": None})
    assert (config.station.name, config.server.port) == ("Front door", 9100)
    assert config.server.host == Config().server.host  # a flag left out changes nothing
    assert as_dict(config)["server"]["port"] == 9100


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sever": {}}, r"^sever: unknown section \(known: .*server"),
        ({"server": {"prot": 1}}, r"^server\.prot: unknown key \(known: .*port"),
        ({"server": "8080"}, r"^server: expected a table, got '8080'"),
        ({"server": {"port": "x"}}, r"^server\.port: expected an integer, got 'x'"),
        ({"server": {"port": True}}, r"^server\.port: expected an integer, got True"),
        ({"server": {"port": 70000}}, r"^server\.port: expected a value from 1 to 65535"),
        ({"call": {"auto_answer": "yes"}}, r"^call\.auto_answer: expected true or false"),
        ({"camera": {"source": "webcam"}}, r"^camera\.source: expected one of "),
        ({"camera": {"rotation": 45}}, r"^camera\.rotation: expected 0, 90, 180 or 270"),
        ({"camera": {"vp8_rung": "mid"}}, r"^camera\.vp8_rung: expected low or high"),
        ({"station": {"public_url": "door.example"}}, r"^station\.public_url: expected an http"),
        ({"station": {"room_id": "a b"}}, r"^station\.room_id: expected 1-64 letters"),
        ({"server": {"cert": "/etc/cert.pem"}}, r"^server\.cert: cert and key must be given"),
        ({"call": {"quiet_hours": "late"}}, r"call\.quiet_hours"),
    ],
)
def test_a_bad_value_names_its_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_mapping(data)  # type: ignore[arg-type]


def test_a_float_key_takes_an_integer() -> None:
    config = from_mapping({"gpio": {"long_press_seconds": 2}})
    assert config.gpio.long_press_seconds == 2.0
    assert isinstance(config.gpio.long_press_seconds, float)
    with pytest.raises(ConfigError, match=r"^call\.ring_timeout_seconds: expected an integer"):
        from_mapping({"call": {"ring_timeout_seconds": 2.5}})


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\nport = 1\n")
    with pytest.raises(ConfigError, match=r"broken\.toml is not valid TOML"):
        load(broken)
    assert issubclass(ConfigError, ValueError)  # callers may catch either
