"""The catalogue itself: it loads, and every scenario can fail."""

import textwrap

import pytest

from uptls import UptlsError, catalogue as cat_mod, scenario_help
from helpers import catalogue, pki

# Which abstract setting each uptls-proxy fault switch breaks.
FAULT_SETTING = {
    "ignore-client-cert": "client_certificate", "skip-verify": "verify",
    "ignore-depth": "verify_depth", "skip-host-check": "verify_name",
    "ignore-protocols": "protocols", "ignore-ciphers": "ciphers",
    "share-sessions": "session_reuse", "no-session-reuse": "session_reuse",
    "no-sni": "send_sni",
    # the HTTP side, for the faults family's first steps
    "mask-upstream-errors": "(answer to an upstream failure)",
    "pass-truncated": "(framing of a cut-short body)",
    "cut-big-headers": "(answer to a too-big header block)",
    # the upstream TLS client, for the faults family's TLS-layer scenarios
    "fatal-post-handshake": "(post-handshake HelloRequest/KeyUpdate)",
    "renegotiation-unverified": "(certificate of a renegotiation)",
    "offer-x25519-only": "(HelloRetryRequest for another group)",
    "strict-chain": "(chain order, duplicates, extras)",
    "small-cert-list": "(a large certificate list)",
}


def test_catalogue_loads_and_has_every_family():
    fams = {s.family for s in catalogue()}
    for fam in ("sanity", "client-cert", "trust", "chain-depth", "name", "protocol",
                "cipher", "session", "sni"):
        assert fam in fams, f"no scenario in family {fam}"


def test_every_scenario_has_a_wrong_way_variant_for_real_targets():
    lacking = [s.id for s in catalogue() if not any(w.proxy or w.drop for w in s.wrong)]
    assert not lacking, f"scenarios with no configuration-level wrong-way variant: {lacking}"


def test_every_fault_switch_is_caught_by_some_scenario():
    used = {w.fault for s in catalogue() for w in s.wrong if w.fault}
    unknown = used - set(FAULT_SETTING)
    assert not unknown, f"scenarios name unknown fault switches: {unknown}"
    missing = set(FAULT_SETTING) - used
    assert not missing, f"fault switches no scenario catches: {sorted(missing)}"


def test_every_setting_is_caught_being_ignored():
    """Each abstract setting has a scenario whose wrong-way variant changes or
    drops exactly that setting (or a fault switch that ignores it)."""
    caught = set()
    for s in catalogue():
        for w in s.wrong:
            caught.update(w.proxy)
            caught.update(w.drop)
            if w.fault:
                caught.add(FAULT_SETTING[w.fault])
    needed = {"client_certificate", "trusted_ca", "verify", "verify_depth", "verify_name",
              "send_sni", "protocols", "ciphers", "ciphersuites", "session_reuse", "crl",
              "keepalive", "client_key_password", "sni_name"}
    assert needed <= caught, f"settings no scenario catches being ignored: {sorted(needed - caught)}"


def _write(tmp_path, rel, text):
    p = tmp_path / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return p


GOOD = """
title = "t"
importance = "low"
checks = "c"
refs = ["r"]
[proxy]
verify = false
[[backend]]
name = "b1"
certificate = "server-a"
[[step]]
expect = { result = "accepted" }
[[wrong]]
why = "w"
proxy = { verify = true }
"""


def test_typo_key_is_an_error_naming_file_and_key(tmp_path):
    _write(tmp_path, "fam/ok.toml", GOOD)
    _write(tmp_path, "fam/typo.toml", GOOD.replace("verify = false", "verfiy = false"))
    with pytest.raises(UptlsError) as e:
        cat_mod.load_catalogue(str(tmp_path), entities=pki().entities)
    msg = str(e.value)
    assert "typo.toml" in msg and "'verfiy'" in msg and "ok.toml" not in msg


def test_every_broken_file_is_reported_at_once(tmp_path):
    _write(tmp_path, "fam/a.toml", GOOD.replace('importance = "low"', 'importance = "huge"'))
    _write(tmp_path, "fam/b.toml", GOOD.replace('certificate = "server-a"',
                                                 'certificate = "server-zz"'))
    _write(tmp_path, "fam/c.toml", "title = \n")
    with pytest.raises(UptlsError) as e:
        cat_mod.load_catalogue(str(tmp_path), entities=pki().entities)
    msg = str(e.value)
    assert "a.toml" in msg and "'huge'" in msg
    assert "b.toml" in msg and "server-zz" in msg
    assert "c.toml" in msg and "TOML syntax error" in msg


def test_step_without_expectation_is_refused(tmp_path):
    _write(tmp_path, "fam/a.toml", GOOD.replace('expect = { result = "accepted" }', 'requests = 1'))
    with pytest.raises(UptlsError, match="cannot fail"):
        cat_mod.load_catalogue(str(tmp_path), entities=pki().entities)


def test_scenario_outside_a_family_folder_is_refused(tmp_path):
    _write(tmp_path, "loose.toml", GOOD)
    with pytest.raises(UptlsError, match="family folder"):
        cat_mod.load_catalogue(str(tmp_path), entities=pki().entities)


def test_selection_matching_nothing_names_the_families():
    with pytest.raises(UptlsError, match="matches no scenario"):
        cat_mod.select(list(catalogue()), "nosuch/*")
    assert {s.family for s in cat_mod.select(list(catalogue()), "session/*")} == {"session"}
    assert {s.family for s in cat_mod.select(list(catalogue()), "session")} == {"session"}


def test_scenario_keys_help_is_generated_from_the_tables():
    """scenarios/README.md lists every key the tables allow, as
    `make scenario-help` writes it from them: a key added without its help
    regenerated fails here."""
    _, part = scenario_help.current()
    assert part is not None, "scenarios/README.md lost its generated keys section"
    assert part == scenario_help.render(), "scenarios/README.md is out of date: make scenario-help"


def test_every_key_the_catalogue_uses_is_documented():
    _, part = scenario_help.current()
    used = set()
    for s in catalogue():
        for st in s.steps:
            used.update(st.expect)
        for loc in s.locations:
            used.update(loc.settings)
        for b in s.backends:
            used.update(b.options)
    missing = sorted(k for k in used if f"| `{k}` |" not in part)
    assert not missing, f"keys scenarios use that scenarios/README.md does not explain: {missing}"
