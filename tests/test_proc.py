"""harness/uptls/proc.py: start, wait for, stop; each promise checked."""

import os
import signal
import subprocess
import sys
import time

import pytest

from uptls import proc

PY = sys.executable
# A listener that serves nothing: it binds the port given as argv[1] and sleeps.
LISTEN = ("import socket, sys, time\ns = socket.socket()\n"
          "s.bind(('127.0.0.1', int(sys.argv[1])))\ns.listen(8)\ntime.sleep(60)\n")


def gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_free_port_is_bindable():
    import socket
    port = proc.free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_wait_port_then_stop_with_term(tmp_path):
    port = proc.free_port()
    p = proc.start([PY, "-c", LISTEN, str(port)], log=tmp_path / "out.log")
    p.wait_port(port, timeout=10)
    assert p.stop() == -signal.SIGTERM
    assert gone(p.pid)


def test_wait_port_reports_an_early_exit_and_its_output(tmp_path):
    p = proc.start([PY, "-c", "import sys; print('no config here', file=sys.stderr); sys.exit(3)"],
                   log=tmp_path / "out.log")
    with pytest.raises(proc.ProcError, match="exited at start .status 3"):
        proc.wait_port(proc.free_port(), p, timeout=10)
    assert p.log_tail() == "no config here"


def test_wait_port_times_out(tmp_path):
    t0 = time.monotonic()
    with proc.start([PY, "-c", "import time; time.sleep(60)"]) as p:
        with pytest.raises(proc.ProcError, match="did not listen on 127.0.0.1:.* within 0.3 s"):
            p.wait_port(proc.free_port(), timeout=0.3)
    assert time.monotonic() - t0 < 5
    assert gone(p.pid)


def test_stop_kills_what_ignores_term_and_its_forked_workers(tmp_path):
    # A "master" that ignores TERM and forks a "worker" that ignores it too.
    code = ("import os, signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "pid = os.fork()\nif pid == 0:\n    time.sleep(60)\n    os._exit(0)\n"
            "print(pid, flush=True)\ntime.sleep(60)\n")
    p = proc.start([PY, "-c", code], stdout=subprocess.PIPE)
    worker = int(p.first_line(timeout=10))
    t0 = time.monotonic()
    assert p.stop(signals=((signal.SIGTERM, 0.5), (signal.SIGKILL, 3.0))) == -signal.SIGKILL
    assert time.monotonic() - t0 < 5
    assert proc.wait_until(lambda: gone(worker), timeout=5)
    p.stdout.close()


def test_first_line_leaves_the_rest_and_reports_silence():
    with proc.start([PY, "-c", "print('{\"port\": 1}', flush=True); print('next', flush=True);"
                     "import time; time.sleep(60)"], stdout=subprocess.PIPE) as p:
        assert p.first_line(timeout=10) == b'{"port": 1}\n'
        assert p.first_line(timeout=10) == b"next\n"
        with pytest.raises(proc.ProcError, match="wrote no line within 0.2 s"):
            p.first_line(timeout=0.2)
    with proc.start([PY, "-c", "pass"], stdout=subprocess.PIPE) as p:
        with pytest.raises(proc.ProcError, match="closed its output before a line"):
            p.first_line(timeout=10)


def test_a_child_dies_with_its_parent(tmp_path):
    # The parent starts a sleeper through proc.start and is then SIGKILLed:
    # PR_SET_PDEATHSIG ends the sleeper.
    harness = os.path.dirname(os.path.dirname(proc.__file__))
    code = (f"import sys, time\nsys.path.insert(0, {harness!r})\nfrom uptls import proc\n"
            f"p = proc.start([{PY!r}, '-c', 'import time; time.sleep(60)'], group=False)\n"
            "print(p.pid, flush=True)\ntime.sleep(60)\n")
    parent = proc.start([PY, "-c", code], stdout=subprocess.PIPE)
    child = int(parent.first_line(timeout=10))
    assert not gone(child)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(timeout=5)
    parent.stdout.close()
    try:
        assert proc.wait_until(lambda: gone(child), timeout=5), "the child outlived its parent"
    finally:
        if not gone(child):
            os.kill(child, signal.SIGKILL)


def test_wait_until():
    assert proc.wait_until(lambda: 7, timeout=1) == 7
    t0 = time.monotonic()
    assert proc.wait_until(lambda: None, timeout=0.1) is None
    assert time.monotonic() - t0 < 2
