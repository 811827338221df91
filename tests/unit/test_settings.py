"""The configuration file: the example site, environment overrides, and located one-line errors."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from app.cli import main
from kernel.errors import ConfigError
from kernel.settings import ENV_OVERRIDES, Settings, parse_settings

SITE_FILE = Path(__file__).resolve().parents[2] / "examples" / "site.yaml"
SITE = SITE_FILE.read_text(encoding="utf-8")
SOURCE = "site.yaml"

NO_LINE = "points at the top level without a line: Settings-level validators raise with an empty loc"
PARENT_LINE = "points at the enclosing community: the check runs in Community's model validator"


def parse(text: str, env: dict[str, str] | None = None) -> Settings:
    return parse_settings(text, source=SOURCE, env={} if env is None else env)


def test_example_site_parses() -> None:
    s = parse(SITE)
    assert (s.mqtt.url, s.mqtt.prefix) == ("mqtt://127.0.0.1:1883", "cb")
    assert (s.influx.url, s.influx.database) == ("http://127.0.0.1:8086", "community_brain")
    assert (s.http.host, s.http.port, s.state_dir, s.locale) == ("127.0.0.1", 8000, "./var", "zh-CN")
    assert s.street is not None and (s.street.id, s.street.name) == ("linfen", "临汾路街道")
    assert [c.id for c in s.communities] == ["linfen-yicun", "linfen-ercun"]
    yicun = s.communities[0]
    assert [(b.id, b.grid) for b in yicun.buildings] == [("b01", "g1"), ("b02", "g1"), ("b03", "g2")]
    assert len(s.devices) == 9
    assert s.devices[3].model_dump() == {"id": "ev-b02-p01", "type": "ebike_charger", "community": "linfen-yicun",
                                         "building": "b02", "name": None,
                                         "location": {"lat": None, "lon": None, "text": "2号楼车棚1号充电口"},
                                         "source": None, "address": None, "port": None, "profile": None, "vars": {},
                                         "expected_interval_s": None}
    assert [r.role for r in s.recipients] == (["grid_worker"] * 3 + ["community"] * 2 + ["street_office", "bureau"]
                                              + ["department"] * 8)
    assert [d.kind for d in s.departments] == ["fire", "police", "urban", "property", "property", "power", "water",
                                               "gas"]
    assert s.recipients[0].channels[0].model_dump() == {"type": "webhook", "url": "http://127.0.0.1:9101/worker-g1",
                                                        "secret": "example-secret-g1", "previous_secret": None}
    assert [(t.recipient, t.role) for t in s.api_tokens] == [
        ("worker-g1", None), ("worker-g3", None), ("street-office", None), (None, "admin")]


def test_empty_file_gives_defaults() -> None:
    s = parse("")
    assert (s.mqtt.prefix, s.http.port, s.communities, s.devices) == ("cb", 8000, [], [])


@pytest.mark.parametrize(
    ("var", "value", "read"),
    [
        ("CB_MQTT_URL", "mqtts://u:p@broker.example:8883", lambda s: s.mqtt.url),
        ("CB_INFLUX_URL", "http://influx.example:8086", lambda s: s.influx.url),
        ("CB_INFLUX_DB", "cb_test", lambda s: s.influx.database),
        ("CB_HTTP_PORT", "9100", lambda s: s.http.port),
        ("CB_STATE_DIR", "/var/lib/cbrain", lambda s: s.state_dir),
        ("CB_INFLUX_TOKEN", "apiv3_secret", lambda s: s.influx.token),
        ("CB_INFLUX_FLAVOR", "v3", lambda s: s.influx.flavor),
        ("CB_INFLUX_ORG", "city-it", lambda s: s.influx.org),
    ],
)
def test_env_override_applies(var: str, value: str, read: Callable[[Settings], object]) -> None:
    expected: object = int(value) if var == "CB_HTTP_PORT" else value
    assert read(parse(SITE)) != expected
    assert read(parse(SITE, {var: value})) == expected
    assert read(parse("", {var: value})) == expected


def test_env_overrides_cover_the_contract() -> None:
    assert set(ENV_OVERRIDES) == {"CB_MQTT_URL", "CB_INFLUX_URL", "CB_INFLUX_DB", "CB_HTTP_PORT", "CB_STATE_DIR",
                                  "CB_CLUSTER_INSTANCE", "CB_INFLUX_TOKEN", "CB_INFLUX_FLAVOR", "CB_INFLUX_ORG",
                                  "CB_INFLUX_BUCKET"}


def test_cluster_from_the_environment() -> None:
    """CONTRACT §12: CB_CLUSTER_NATS (comma-separated) and CB_CLUSTER_INSTANCE make the cluster section."""
    s = parse(SITE, {"CB_CLUSTER_NATS": "nats://10.0.0.1:4222, nats://10.0.0.2:4222", "CB_CLUSTER_INSTANCE": "cb-2"})
    assert s.cluster is not None
    assert (s.cluster.nats, s.cluster.instance) == (["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"], "cb-2")
    assert parse(SITE, {}).cluster is None


@pytest.mark.parametrize(("cluster", "says"), [
    ({"nats": ["http://x:4222"], "instance": "a"}, "is not a NATS URL"),
    ({"nats": [], "instance": "a"}, "cluster.nats"),
    ({"nats": ["nats://x:4222"], "instance": "A B"}, "cluster.instance"),
    ({"nats": ["nats://x:4222"], "instance": "a", "ack_wait_s": 20}, "checkpoint_s < ack_wait_s < failover_s"),
])
def test_cluster_settings_say_what_is_wrong(cluster: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)):
        parse(SITE + "\ncluster: " + json.dumps(cluster), {})


def test_env_override_keeps_the_rest_of_the_section() -> None:
    s = parse(SITE, {"CB_MQTT_URL": "mqtt://10.0.0.1:1884", "CB_INFLUX_URL": "http://10.0.0.2:8086/"})
    assert (s.mqtt.url, s.mqtt.prefix) == ("mqtt://10.0.0.1:1884", "cb")
    assert (s.influx.url, s.influx.database) == ("http://10.0.0.2:8086", "community_brain")


def test_empty_influx_url_means_the_embedded_store() -> None:
    assert parse(SITE, {"CB_INFLUX_URL": ""}).influx.url is None


def test_explicit_env_ignores_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CB_HTTP_PORT", "9200")
    assert parse(SITE).http.port == 8000
    assert parse_settings(SITE, source=SOURCE).http.port == 9200


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        parse(SITE, {"CB_HTTP_PORT": "eighty"})
    assert str(info.value).startswith(f"{SOURCE}:{line_of(SITE, 'port: 8000')}: http.port: ")
    assert "(from CB_HTTP_PORT)" in str(info.value)


def line_of(text: str, needle: str) -> int:
    """The 1-based line holding needle (exactly once in text)."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


def edit(old: str, new: str) -> str:
    assert SITE.count(old) == 1, old
    return SITE.replace(old, new)


# (name, mutated file, text of the line the error must point at, a fragment of the message)
BAD_FILES: list[tuple[str, str, str, str]] = [
    ("yaml_mapping_in_value", edit("  prefix: cb\n", "  prefix: cb: x\n"), "prefix: cb: x", "not valid YAML"),
    ("yaml_tab", edit("  port: 8000", "\tport: 8000"), "\tport: 8000", "not valid YAML"),
    ("yaml_bad_indent", edit("http:\n  host: 127.0.0.1\n  port: 8000", "http:\n  host: 127.0.0.1\n port: 8000"),
     " port: 8000", "not valid YAML"),
    ("unknown_key", edit("  prefix: cb\n", "  prefix: cb\n  colour: red\n"), "colour: red", "mqtt.colour"),
    ("unknown_top_level_key", SITE + "colour: red\n", "colour: red", "colour"),
    ("bad_grid_id", edit("{id: g2, name: 第二网格,", "{id: G2, name: 第二网格,"), "G2", "communities.0.grids.1.id"),
    ("bad_device_id", edit("{id: wl-garage,", "{id: wl garage,"), "wl garage", "devices.7.id"),
    ("bad_device_type", edit("{id: wl-garage, type: water_level", "{id: wl-garage, type: toaster"), "toaster",
     "devices.7.type"),
    ("bad_port", edit("port: 8000", "port: 99999"), "port: 99999", "http.port"),
    ("bad_mqtt_url", edit("url: mqtt://127.0.0.1:1883", "url: http://127.0.0.1:1883"), "url: http://127.0.0.1:1883",
     "mqtt.url"),
    ("bad_role", edit("role: bureau", "role: mayor"), "role: mayor", "recipients.6.role"),
    ("short_token", edit("{token: example-token-admin,", "{token: short,"), "token: short", "api_tokens.3.token"),
    # Channels: each type's own keys (kernel/channels/), at the channel's line.
    ("webhook_without_secret", edit("/worker-g1\", secret: example-secret-g1}", "/worker-g1\"}"), "/worker-g1\"}",
     "recipients.0.channels.0.secret: Field required"),
    ("wecom_without_url", edit('{type: webhook, url: "http://127.0.0.1:9101/worker-g2", secret: example-secret-g2}',
                               "{type: wecom}"), "{type: wecom}", "recipients.1.channels.0.url: Field required"),
    ("webhook_bad_url", edit('"http://127.0.0.1:9101/worker-g1"', '"htp:/127.0.0.1/worker-g1"'), "htp:/",
     "recipients.0.channels.0.url: 'htp:/127.0.0.1/worker-g1' is not an http:// or https:// URL"),
    ("unknown_channel_type", edit('{type: webhook, url: "http://127.0.0.1:9101/worker-g2"',
                                  '{type: smoke_signal, url: "http://127.0.0.1:9101/worker-g2"'), "smoke_signal",
     "recipients.1.channels.0: type is one of dingtalk, log, mqtt, sms, voice, webhook, wecom"),
    ("channel_unknown_key", edit("secret: example-secret-g1}", "secret: example-secret-g1, secrte: x}"), "secrte",
     "recipients.0.channels.0.secrte: Extra inputs are not permitted"),
]

BAD_REFERENCES: list[tuple[str, str, str, str, str]] = [
    ("building_names_missing_grid", edit("{id: b03, name: 3号楼, grid: g2,", "{id: b03, name: 3号楼, grid: g9,"),
     "grid: g9", "names grid 'g9'", PARENT_LINE),
    ("duplicate_grid", edit("{id: g2, name: 第二网格,", "{id: g1, name: 第二网格,"), "第二网格",
     "grid id 'g1' appears twice", PARENT_LINE),
    ("duplicate_building", edit("{id: b02, name: 2号楼", "{id: b01, name: 2号楼"), "name: 2号楼",
     "building id 'b01' appears twice", PARENT_LINE),
    ("device_names_missing_building", edit("community: linfen-ercun, building: b12,",
                                           "community: linfen-ercun, building: b99,"),
     "building: b99", "names building 'b99'", NO_LINE),
    ("device_names_missing_community", edit("{id: wl-garage, type: water_level, community: linfen-ercun",
                                            "{id: wl-garage, type: water_level, community: linfen-sancun"),
     "linfen-sancun", "names community 'linfen-sancun'", NO_LINE),
    ("token_names_missing_recipient", edit("recipient: worker-g3}", "recipient: worker-g9}"), "worker-g9",
     "names recipient 'worker-g9'", NO_LINE),
    ("recipient_scope_names_missing_grid", edit("scope: {community: linfen-ercun, grid: g3}",
                                                "scope: {community: linfen-ercun, grid: g1}"),
     "scope: {community: linfen-ercun, grid: g1}", "scope grid 'g1'", NO_LINE),
    ("duplicate_device", edit("{id: sd-b01-0502, type: smoke_detector, community: linfen-yicun, building: b01,",
                              "{id: sd-b01-0501, type: smoke_detector, community: linfen-yicun, building: b01,"),
     "1号楼502室厨房", "listed twice", NO_LINE),
    ("duplicate_community", edit("  - id: linfen-ercun\n", "  - id: linfen-yicun  # 2\n"), "# 2",
     "community id 'linfen-yicun' appears twice", NO_LINE),
    ("duplicate_recipient", edit("  - id: worker-g2\n", "  - id: worker-g1  # 2\n"), "# 2",
     "recipient id 'worker-g1' appears twice", NO_LINE),
    ("duplicate_token", edit("{token: example-token-worker-g3,", "{token: example-token-worker-g1,"),
     "example-token-worker-g1, recipient: worker-g3", "appears twice", NO_LINE),
]


def assert_located(text: str, marker: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{SOURCE}:{line_of(text, marker)}: "), message
    assert fragment in message


@pytest.mark.parametrize(("text", "marker", "fragment"), [pytest.param(t, m, f, id=n) for n, t, m, f in BAD_FILES])
def test_bad_file_error_points_at_the_line(text: str, marker: str, fragment: str) -> None:
    assert_located(text, marker, fragment)


@pytest.mark.parametrize(
    ("text", "marker", "fragment"),
    [pytest.param(t, m, f, id=n) for n, t, m, f, _ in BAD_REFERENCES],
)
def test_bad_reference_error_points_at_the_line(text: str, marker: str, fragment: str) -> None:
    assert_located(text, marker, fragment)


@pytest.mark.parametrize(("text", "fragment"), [pytest.param(t, f, id=n) for n, t, _, f, _ in BAD_REFERENCES])
def test_bad_reference_is_a_one_line_config_error(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text)
    message = str(info.value)
    assert message.startswith(f"{SOURCE}:")
    assert "\n" not in message and fragment in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", f"{SOURCE}: the top level must be a mapping of keys, not list"),
        ("just text\n", f"{SOURCE}: the top level must be a mapping of keys, not str"),
    ],
)
def test_top_level_must_be_a_mapping(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}$"):
        parse(text)


def test_several_errors_are_counted() -> None:
    text = edit("port: 8000", "port: -1").replace("prefix: cb", "prefix: 'c b'")
    with pytest.raises(ConfigError, match=r"\(and 1 more\)$"):
        parse(text)


@pytest.mark.parametrize(("old", "new", "key"), [
    ("/worker-g1\", secret: example-secret-g1}", "/worker-g1\"}", "recipients.0.channels.0.secret"),
    ('{type: webhook, url: "http://127.0.0.1:9101/worker-g2", secret: example-secret-g2}', "{type: wecom}",
     "recipients.1.channels.0.url"),
    ('{type: webhook, url: "http://127.0.0.1:9101/worker-g2"', '{type: smoke_signal, url: "http://127.0.0.1:9101/worker-g2"',
     "recipients.1.channels.0"),
])
def test_config_check_names_file_line_and_key_of_a_bad_channel(old: str, new: str, key: str, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    bad = edit(old, new)
    path = tmp_path / "site.yaml"
    path.write_text(bad, encoding="utf-8")
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith(f"cbrain: bad configuration: {path}:{line_of(bad, new)}: {key}"), err


def test_a_webhook_may_carry_its_previous_secret_during_a_rotation() -> None:
    s = parse(edit("secret: example-secret-g1}", "secret: new-secret-g1, previous_secret: example-secret-g1}"))
    channel = s.recipients[0].channels[0]
    assert (channel.type, getattr(channel, "secret", None), getattr(channel, "previous_secret", None)) == (
        "webhook", "new-secret-g1", "example-secret-g1")
