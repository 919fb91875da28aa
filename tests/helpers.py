"""Shared by the harness's own tests: build once, run the driver in-process."""

import functools
import subprocess

from uptls import ROOT, catalogue as cat_mod, pki as pki_mod, targets
from uptls.runner import run

PYTHON = "/usr/bin/python3"


@functools.lru_cache(maxsize=None)
def built():
    r = subprocess.run(["make", "-s", "all"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return True


@functools.lru_cache(maxsize=None)
def pki():
    built()
    return pki_mod.build()


@functools.lru_cache(maxsize=None)
def catalogue():
    return tuple(cat_mod.load_catalogue(entities=pki().entities))


def run_target(name, scenarios=None, faults=(), variants=False, keep=False):
    t = targets.get(name, None, faults)
    return run(t, list(scenarios if scenarios is not None else catalogue()), pki(),
               variants=variants, keep=keep)


def conformance(*make_args, timeout=300):
    """`make conformance ...` as a user runs it; returns the CompletedProcess."""
    return subprocess.run(["make", "-s", "conformance", *make_args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def by_id(doc):
    return {r["id"]: r for r in doc["scenarios"]}
