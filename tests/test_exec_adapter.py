"""TARGET=exec:PATH: the adapter protocol (docs/adapter-protocol.md).

The document's examples against its schemas (with the driver's validator and
with Debian's python3-jsonschema), the schemas against the driver's tables,
the worked example adapter against the built-in nginx adapter over the whole
catalogue, and every way an adapter can break the protocol: each ends with
exit 2 and one line naming the adapter, the step and what was wrong, within
30 s, with no process left behind.
"""

import copy
import json
import os
import re
import subprocess
import time

import jsonschema as std_jsonschema
import pytest

from helpers import catalogue
from uptls import ROOT, jsonschema, targets
from uptls.scenario import EXTRA_CAPABILITIES, PROTOCOLS, PROXY_SETTINGS
from uptls.targets.exec import SCHEMA_DIR, schema

DOC = os.path.join(ROOT, "docs", "adapter-protocol.md")
EXAMPLE = os.path.join(ROOT, "examples", "adapters", "nginx")
MESSAGES = ("describe-request", "describe-response", "render-request", "render-response",
            "check-request", "check-response")


def doc_examples():
    """(message, JSON) for every block marked <!-- example: MESSAGE --> in the document."""
    text = open(DOC, encoding="utf-8").read()
    found = re.findall(r"<!-- example: ([a-z-]+) -->\s*```json\n(.*?)```", text, re.S)
    return [(m, json.loads(body)) for m, body in found]


def test_every_message_has_a_schema_and_an_example():
    assert sorted(f[:-len(".schema.json")] for f in os.listdir(SCHEMA_DIR)) == sorted(MESSAGES)
    assert sorted({m for m, _ in doc_examples()}) == sorted(MESSAGES)


@pytest.mark.parametrize("message,example", doc_examples(), ids=lambda x: x if
                         isinstance(x, str) else "")
def test_document_examples_validate(message, example):
    s = schema(message)
    std_jsonschema.Draft202012Validator.check_schema(s)
    assert jsonschema.errors(s, example) == []
    std_jsonschema.Draft202012Validator(s).validate(example)


def _broken(example):
    """Variants of a valid message that its schema must reject."""
    out = [{k: v for k, v in example.items() if k != "protocol"},      # required missing
           {**example, "protocol": "uptls-adapter/2"},                  # wrong version
           {**example, "surprise": 1}]                                  # unknown key
    if "capabilities" in example:
        out.append({**example, "capabilities": {**example["capabilities"], "verify_hostnam": True}})
        out.append({**example, "capabilities": {"verify": False}})      # true or a reason
    if "units" in example:
        bad = copy.deepcopy(example)
        bad["units"][0]["settings"]["verify"] = "yes"
        out.append(bad)
        bad = copy.deepcopy(example)
        bad["units"][0]["settings"]["protocols"] = ["SSLv3"]
        out.append(bad)
    if "processes" in example:
        out.append({**example, "processes": []})
        out.append({**example, "processes": [{"argv": ["x"], "stop_signal": "KILL"}]})
    return out


@pytest.mark.parametrize("message,example", doc_examples(), ids=lambda x: x if
                         isinstance(x, str) else "")
def test_validators_agree_on_broken_messages(message, example):
    s = schema(message)
    std = std_jsonschema.Draft202012Validator(s)
    for bad in _broken(example):
        ours = jsonschema.errors(s, bad)
        assert ours, f"driver's validator accepts {bad}"
        assert not std.is_valid(bad), f"python3-jsonschema accepts {bad}"


def test_schemas_list_exactly_the_drivers_settings():
    caps = schema("describe-response")["properties"]["capabilities"]["propertyNames"]["enum"]
    assert sorted(caps) == sorted(list(PROXY_SETTINGS) + list(EXTRA_CAPABILITIES))
    settings = schema("render-request")["$defs"]["unit"]["properties"]["settings"]["properties"]
    assert sorted(settings) == sorted(PROXY_SETTINGS)
    json_type = {str: "string", bool: "boolean", int: "integer", list: "array"}
    for name, (typ, _) in PROXY_SETTINGS.items():
        assert settings[name]["type"] == json_type[typ], name
    assert settings["protocols"]["items"]["enum"] == list(PROTOCOLS)


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_builtin_adapters_describe_themselves_in_the_protocol(name):
    # The internal interface and the protocol are one idea: every built-in
    # adapter's describe() is a valid describe answer.
    t = targets.get(name)
    try:
        t.find_binary()
    except targets.UptlsError as e:
        pytest.fail(f"{name}: {e} (make deps installs every built-in target)")
    d = t.describe()
    assert jsonschema.errors(schema("describe-response"), d) == []
    assert d["name"] == name and d["capabilities"] == t.capabilities


# -- running adapters -----------------------------------------------------------------
def make_conformance(tmp_path, *args, timeout=120):
    """make conformance with its run folders under tmp_path (TMPDIR), so a
    process left behind can be found by its command line."""
    env = dict(os.environ, TMPDIR=str(tmp_path))
    t0 = time.monotonic()
    r = subprocess.run(["make", "-s", "conformance", f"REPORT_DIR={tmp_path / 'out'}", *args],
                       cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env,
                       stdin=subprocess.DEVNULL)
    r.elapsed = time.monotonic() - t0
    r.out = r.stdout + r.stderr
    return r


def processes_naming(token):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if token in cmd:
            found.append(f"{pid}: {cmd}")
    return found


def test_example_adapter_gives_nginx_verdicts(tmp_path):
    builtin = make_conformance(tmp_path / "a", "TARGET=nginx")
    assert builtin.returncode == 0, builtin.out[-2000:]
    exe = make_conformance(tmp_path / "b", f"TARGET=exec:{EXAMPLE}")
    assert exe.returncode == 0, exe.out[-2000:]
    a = json.loads((tmp_path / "a" / "out" / "nginx.json").read_text())
    b = json.loads((tmp_path / "b" / "out" / "example-nginx.json").read_text())
    assert b["target"]["name"] == "example-nginx"
    assert b["target"]["version"] == a["target"]["version"]
    assert b["target"]["openssl"] == a["target"]["openssl"]
    verdicts = lambda doc: {r["id"]: r["verdict"] for r in doc["scenarios"]}  # noqa: E731
    assert verdicts(b) == verdicts(a)
    assert len(verdicts(b)) >= 100
    # its own excerpts reach the report
    one = next(r for r in b["scenarios"] if r["id"] == "trust/unknown-root-refused")
    assert "proxy_ssl_verify on;" in one["config_excerpt"]


WRAPPER = """#!/usr/bin/python3
# A broken adapter for the tests: the example adapter, with one step spoiled.
import json, os, subprocess, sys, time
step = sys.argv[1]
req = sys.stdin.read()
{spoil}
r = subprocess.run([{example!r}, step], input=req, capture_output=True, text=True)
sys.stderr.write(r.stderr)
if r.returncode:
    sys.exit(r.returncode)
answer = json.loads(r.stdout)
if step == "describe":  # the example's list, from this copy's folder
    answer["deviations"] = os.path.join(os.path.dirname({example!r}), answer["deviations"])
{change}
print(json.dumps(answer))
"""


def adapter(tmp_path, spoil="", change=""):
    path = tmp_path / "adapter"
    path.write_text(WRAPPER.format(spoil=spoil, change=change, example=EXAMPLE))
    path.chmod(0o755)
    return str(path)


TOKEN = "597.4242"  # a sleep that only these tests start
BAD = {
    "exits-non-zero": (dict(spoil="if step == 'describe':\n    sys.stderr.write("
                            "'cannot find my proxy\\n'); sys.exit(3)"),
                       "describe: exited with status 3: cannot find my proxy"),
    "not-json": (dict(spoil="if step == 'describe':\n    print('hello, uptls'); sys.exit(0)"),
                 "describe: answer is not JSON"),
    "breaks-schema": (dict(change="if step == 'render':\n    answer['processes'] = "
                                  "[{'argv': 'nginx -g daemon'}]"),
                      "render: answer breaks docs/adapter-protocol/render-response.schema.json: "
                      "$.processes[0].argv: expected array"),
    "unknown-capability": (dict(change="if step == 'describe':\n    "
                                       "answer['capabilities']['verify_hostnam'] = True"),
                           "describe: answer breaks docs/adapter-protocol/describe-response."
                           "schema.json: $.capabilities: unknown key 'verify_hostnam'"),
    "hangs": (dict(spoil=f"if step == 'render':\n    subprocess.run(['sleep', '{TOKEN}'])"),
              "render: no answer within 20 s (stopped it)"),
    "never-listens": (dict(change=f"if step == 'render':\n    answer['processes'] = "
                                  f"[{{'argv': ['sleep', '{TOKEN}']}}]"),
                      "render: processes[0] (sleep) did not listen on 127.0.0.1:"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_broken_adapter_is_one_clear_line(tmp_path, case):
    spoil, expected = BAD[case]
    path = adapter(tmp_path, **spoil)
    r = make_conformance(tmp_path, f"TARGET=exec:{path}", "SCENARIOS=sanity/*")
    assert r.returncode == 2, r.out[-2000:]
    lines = [ln for ln in r.out.splitlines() if f"uptls: adapter {path}: " in ln]
    assert len(lines) == 1, r.out[-2000:]
    assert expected in lines[0], lines[0]
    assert "Traceback" not in r.out
    assert r.elapsed < 30, f"took {r.elapsed:.1f} s"
    assert processes_naming(TOKEN) == [] and processes_naming(str(tmp_path)) == []
    assert not list((tmp_path / "out").glob("*.json")) if (tmp_path / "out").exists() else True


def test_proxy_that_dies_during_the_run_gives_error_verdicts(tmp_path):
    # A second process that exits after 0.8 s: the proxy "dies" while the
    # 1 s stalled-handshake scenario is under way, and at every restart.
    path = adapter(tmp_path, change="if step == 'render':\n    answer['processes'].append("
                                    "{'argv': ['sh', '-c', 'sleep 0.8; exit 3'], 'ready': []})")
    r = make_conformance(tmp_path, f"TARGET=exec:{path}",
                         "SCENARIOS=sanity/*,faults/stall-handshake-times-out")
    # pytest exits 1 (a scenario is error); make turns any failure into 2
    assert r.returncode != 0 and "1 failed, 1 passed" in r.out, r.out[-2000:]
    doc = json.loads((tmp_path / "out" / "example-nginx.json").read_text())
    res = {x["id"]: x for x in doc["scenarios"]}["faults/stall-handshake-times-out"]
    assert res["verdict"] == "error", res
    assert re.search(r"target (died|exited|crashed)", res["reason"]), res["reason"]
    assert r.elapsed < 30
    assert processes_naming(str(tmp_path)) == []


def test_unsupported_units_from_render(tmp_path):
    # An adapter may refuse a unit at render time; its scenario is unsupported
    # with the adapter's reason, the others run.
    path = adapter(tmp_path, change=(
        "if step == 'render':\n"
        "    req = json.loads(req)\n"
        "    u = [u for u in req['units'] if u['scenario'] == 'trust/unknown-root-refused'][0]\n"
        "    answer.setdefault('unsupported', []).append({'unit': u['id'], 'reason': 'no way'})"))
    r = make_conformance(tmp_path, f"TARGET=exec:{path}",
                         "SCENARIOS=sanity/*,trust/unknown-root-refused,trust/known-root-accepted")
    assert r.returncode == 0, r.out[-2000:]
    doc = json.loads((tmp_path / "out" / "example-nginx.json").read_text())
    res = {x["id"]: x for x in doc["scenarios"]}
    assert res["trust/unknown-root-refused"]["verdict"] == "unsupported"
    assert res["trust/unknown-root-refused"]["reason"] == "no way"
    assert res["trust/known-root-accepted"]["verdict"] == "pass"


def test_undeclared_capability_is_unsupported_not_a_pass(tmp_path):
    path = adapter(tmp_path, change="if step == 'describe':\n    "
                                    "del answer['capabilities']['verify_depth']")
    r = make_conformance(tmp_path, f"TARGET=exec:{path}", "SCENARIOS=chain-depth/*")
    assert r.returncode == 0, r.out[-2000:]
    doc = json.loads((tmp_path / "out" / "example-nginx.json").read_text())
    needs = {s.id for s in catalogue() if "verify_depth" in s.capabilities()}
    res = {x["id"]: x for x in doc["scenarios"]}
    assert needs & set(res) and set(res) - needs  # both kinds are in the family
    for sid, x in res.items():
        if sid in needs:
            assert x["verdict"] == "unsupported", x
            assert "verify_depth: not declared by the adapter" in x["reason"]
        else:
            assert x["verdict"] in ("pass", "deviation", "note"), x
