"""The harness itself holds: a crashing target, a killed run, two runs at once."""

import os
import signal
import subprocess
import sys
import threading

from uptls import proc, targets
from uptls.runner import run
from helpers import ROOT, by_id, catalogue, pki


def _procs_mentioning(text):
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    out.append(int(pid))
        except OSError:
            pass
    return out


def test_target_killed_mid_run_gives_error_and_the_rest_still_run(tmp_path):
    t = targets.get("nginx")
    scenarios = list(catalogue())
    killed = []

    def progress(res):
        # After the sanity scenario, kill the target: later ones must still run.
        if not killed and res["id"] == "sanity/plain-handshake":
            killed.append(t.proc.pid)
            os.killpg(t.proc.pid, signal.SIGKILL)
            t.proc.wait()

    # run_root: its processes are told from other runs on the machine by path
    doc = run(t, scenarios, pki(), progress=progress, run_root=str(tmp_path))
    res = by_id(doc)
    assert killed
    assert len(res) == len(scenarios)
    verdicts = [r["verdict"] for r in res.values()]
    # Only the scenarios running when the target died may be errors; the rest
    # ran against the restarted target and have their usual verdicts.
    assert verdicts.count("error") <= 8 and "fail" not in verdicts, \
        [(r["id"], r["verdict"], r["reason"]) for r in res.values()
         if r["verdict"] in ("error", "fail")]
    for r in res.values():
        if r["verdict"] == "error":
            assert "target" in r["reason"]
    assert not _procs_mentioning(f"{tmp_path}/uptls-nginx-")


def test_killed_harness_leaves_no_process(tmp_path):
    """SIGKILL the driver mid-run: backends and target die with it."""
    code = (
        "import sys, time; sys.path[:0] = ['harness', 'reports', 'tests']\n"
        "from helpers import catalogue, pki\n"
        "from uptls import targets\n"
        "from uptls.runner import run\n"
        "t = targets.get('nginx')\n"
        "def progress(res):\n"
        "    print('started', flush=True); time.sleep(60)\n"
        f"run(t, list(catalogue()), pki(), progress=progress, run_root={str(tmp_path)!r})\n")
    # group=False: in our process group, as a harness run from a shell; only
    # the run's own die-with-parent may end what it started.
    with proc.start([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL, group=False) as p:
        assert p.first_line(timeout=300).strip() == b"started"
        assert _procs_mentioning(f"{tmp_path}/uptls-nginx-"), \
            "the run should have processes up by now"
        p.kill()
        p.wait()
    proc.wait_until(lambda: not _procs_mentioning(f"{tmp_path}/uptls-nginx-"), timeout=5)
    assert not _procs_mentioning(f"{tmp_path}/uptls-nginx-")


def test_two_runs_at_once_do_not_collide():
    docs = []

    def one():
        docs.append(run(targets.get("nginx"), list(catalogue()), pki()))
    threads = [threading.Thread(target=one) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for doc in docs:
        bad = [(r["id"], r["verdict"]) for r in doc["scenarios"]
               if r["verdict"] not in ("pass", "note", "deviation", "unsupported")]
        assert not bad
