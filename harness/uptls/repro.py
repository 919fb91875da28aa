"""make repro: one scenario against one target, as a folder a maintainer can run.

    make repro TARGET=nginx SCENARIO=session/locations-do-not-share-verification [OUT=dir]

runs the scenario once through the driver (so the folder records what uptls
saw), then writes OUT with everything needed to see it again without uptls:
the target's configuration for that scenario alone and the backend's
listener spec as templates (the run folder and the ports are filled in at
run time), the PKI files they name and no other, uptls-backend itself, and
run.sh, which starts the backend and the target, sends the scenario's
requests with curl, prints what the backend observed beside what was
expected, stops what it started, and exits 0 (the target behaved as
documented), 1 (the finding reproduces) or 2 (it could not run). The
checks run.sh makes are harness/repro/lib.sh's, which follow
harness/uptls/verdict.py key by key.
"""

import argparse
import datetime
import difflib
import json
import os
import re
import shlex
import shutil
import sys
import zlib

from . import BIN, ROOT, UptlsError, pki as pki_mod, scenario as sc_mod, targets
from .runner import Run

LIB = os.path.join(ROOT, "harness", "repro", "lib.sh")
# The expectation keys run.sh checks (lib.sh's `expect`); a scenario that
# needs another is refused at generation rather than half-checked.
CHECKED = {"result", "resumed", "sni", "client_cert", "client_chain_len", "negotiated_version",
           "negotiated_cipher", "offered_versions", "offered_versions_exclude", "handshakes",
           "backend_seen", "backend_not_seen", "status_in", "within_s", "answers_whole",
           "truncation_signalled", "offered_versions_default", "offered_ciphers",
           "offered_ciphersuites", "offered_ciphers_exclude", "resumed_per_backend",
           "fresh_first_contact", "offered_versions_default_wire"}
LEFT_OUT = (".log", ".stderr", ".pid", ".out", ".jsonl")


def fail(msg):
    print(f"uptls repro: {msg}", file=sys.stderr)
    sys.exit(2)


class Folder:
    """What is written into OUT, with the run's paths and ports made placeholders."""

    def __init__(self, run, pki, out):
        self.run, self.pki, self.out = run, pki, out
        self.batch = run.target.run_dir
        self.ports = {}
        self.pki_files = set()

    def port(self, p):
        return self.ports.setdefault(int(p), len(self.ports))

    def template(self, text):
        """Record the PKI files a text names; make its paths and ports placeholders."""
        roots = ((self.batch, "@RUN@"), (os.path.join(self.run.run_dir, "pki"), "@DIR@/pki"),
                 (self.pki.dir, "@DIR@/pki"))
        for root, _ in roots[1:]:
            for m in re.finditer(re.escape(root) + r"/([^\s\"';,]+)", text):
                self.pki_files.add(os.path.join(root, m.group(1)))
        for root, mark in roots:
            text = text.replace(root, mark)
        return re.sub(r"(127\.0\.0\.1|localhost|\[::1\]):(\d+)",
                      lambda m: f"{m.group(1)}:@PORT_{self.ports[int(m.group(2))]}@"
                      if int(m.group(2)) in self.ports else m.group(0), text)

    def write_target(self):
        dest = os.path.join(self.out, "template", "target")
        for dirpath, dirs, files in os.walk(self.batch):
            rel = os.path.relpath(dirpath, self.batch)
            os.makedirs(os.path.join(dest, rel), exist_ok=True)
            for f in files:
                if f.endswith(LEFT_OUT):
                    continue
                src = os.path.join(dirpath, f)
                with open(src, errors="surrogateescape") as fh:
                    text = self.template(fh.read())
                with open(os.path.join(dest, rel, f), "w", errors="surrogateescape") as fh:
                    fh.write(text)
                shutil.copymode(src, os.path.join(dest, rel, f))

    def write_backends(self, job):
        lines = []
        for name, lst in job.backends.items():
            spec = {**lst.spec, "port": f"@PORT_{self.port(lst.port)}@",
                    "log": "@RUN@/backend.log.jsonl"}
            lines.append(re.sub(r'"(@PORT_\d+@)"', r"\1", self.template(json.dumps(spec))))
        with open(os.path.join(self.out, "template", "backends.jsonl"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def write_pki(self):
        dest = os.path.join(self.out, "pki")
        os.makedirs(dest, exist_ok=True)
        for src in sorted(self.pki_files):
            shutil.copy2(src, os.path.join(dest, os.path.basename(src)))
        return sorted(os.path.basename(p) for p in self.pki_files)


def shell_words(argv, folder, binary_var):
    out = []
    for i, a in enumerate(argv):
        if i == 0:
            out.append(f'"${binary_var}"')
            continue
        t = folder.template(a)
        out.append('"' + t.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
                   .replace("`", "\\`").replace("@RUN@", "$RUN").replace("@DIR@", "$HERE")
                   + '"')
    return " ".join(out)


def target_commands(target, folder):
    """The shell lines that start the target (built-in: argv; exec: render's processes)."""
    plan = getattr(target, "plan", None)
    if plan:
        lines = []
        for spec in plan["processes"]:
            env = " ".join(f"{k}={shlex.quote(v)}" for k, v in spec.get("env", {}).items())
            lines.append(("env " + env + " " if env else "") +
                         shell_words(spec["argv"], folder, "TARGET_BIN"))
        return lines
    return [shell_words(target.argv(os.path.join(target.run_dir, "target.conf")), folder,
                        "TARGET_BIN")]


def expectation_lines(step, target, pki):
    out = []
    for key, value in step.expect.items():
        if key in ("offered_versions_default", "offered_versions_default_wire") and value:
            protos, _ = target.documented_default_protocols()
            if not protos:
                raise UptlsError(f"{target.name} documents no default protocol set")
            name = "offered_versions" if key == "offered_versions_default" else key
            out.append(f"expect {name} " + " ".join(protos))
        elif key == "client_cert":
            want = "none" if value == "none" else pki.entity(value)["sha256"]
            out.append(f"expect client_cert {want} {shlex.quote(value)}")
        elif isinstance(value, bool):
            if value:
                out.append(f"expect {key}")
        elif isinstance(value, list):
            out.append(f"expect {key} " + " ".join(shlex.quote(str(v)) for v in value))
        else:
            out.append(f"expect {key} {shlex.quote(str(value))}")
    return out


def run_sh(target, info, sc, job, folder, nports, default_bin):
    lines = ["#!/bin/sh",
             f"# uptls reproduction: {sc.id} against {info['name']} {info['version']}",
             f"# Made by `make repro` on {datetime.date.today()}; see README.md beside this file.",
             "# Exit status: 0 the target behaved as documented, 1 the finding reproduces,",
             "# 2 it could not run. Environment: TARGET_BIN, PORT_BASE, UPTLS_BACKEND, KEEP=1.",
             "set -u",
             'HERE=$(cd "$(dirname "$0")" && pwd)',
             f"TARGET_NAME={shlex.quote(info['name'] + ' ' + info['version'])}",
             f"TARGET_BIN=${{TARGET_BIN:-{default_bin}}}",
             'BACKEND=${UPTLS_BACKEND:-$HERE/bin/uptls-backend}',
             "PORT_FIXED=${PORT_BASE:+1}",
             # a starting point only: lib.sh's free_block moves on from it
             # to a block with no listener when run.sh runs
             f"PORT_BASE=${{PORT_BASE:-{20000 + zlib.crc32(sc.id.encode()) % 30000}}}",
             f"NPORTS={nports}",
             f"REFUSAL_CLOSES={1 if getattr(target, 'refusal_closes_connection', False) else 0}",
             '. "$HERE/lib.sh"', "",
             f"say {shlex.quote('uptls reproduction: ' + sc.id + ' -- ' + sc.title)}",
             'say "target: $TARGET_NAME ($TARGET_BIN)"',
             "setup"]
    lines += ["start_target " + c for c in target_commands(target, folder)]
    for i, step in enumerate(sc.steps, 1):
        unit = job.units[step.location]
        host, port = target.address(unit)
        url = f"http://127.0.0.1:$P{folder.ports[int(port)]}{unit.prefix}step{i}/req"
        lines.append(f"step {i} {shlex.quote(step.location)} {step.requests} \"{url}\"")
        lines += expectation_lines(step, target, folder.pki)
    lines += ["finish", ""]
    return "\n".join(lines)


def readme(target, info, sc, result, deviation, files, excerpt):
    steps = "\n".join(f"| {i} | {s.location} | {s.requests} | "
                      + ", ".join(f"`{k} = {json.dumps(v)}`" for k, v in s.expect.items()) + " |"
                      for i, s in enumerate(sc.steps, 1))
    refs = "\n".join(f"- {r}" for r in sc.refs)
    dev = (f"\nuptls lists this as a known deviation of {info['name']}: {deviation['reason']} "
           f"(source: {deviation['source']}).\n" if deviation else "")
    return f"""# {sc.id}: {sc.title}

Target: **{info['name']} {info['version']}** ({info.get('openssl', '?')}), binary
`{info['binary']}`. Importance: **{sc.importance}**.

When this folder was made, uptls's verdict was **{result['verdict']}**:
{result['reason']}
{dev}
## What is tested

{sc.checks.strip()}

The expectation rests on:

{refs}

| step | location | requests | expected |
|---|---|---|---|
{steps}

## How to run it

```sh
./run.sh                                  # from any directory; needs the target, curl, sed, awk
TARGET_BIN=/path/to/other/build ./run.sh  # another build of the target
PORT_BASE=30000 ./run.sh                  # other ports, if these are taken
KEEP=1 ./run.sh                           # keep the run folder (configuration, logs)
```

Exit status: **0** the target behaved as documented, **1** the finding
reproduces (each failed expectation is printed as `FAIL`), **2** it could not
run. run.sh starts `bin/uptls-backend` (a mock TLS server that logs what the
proxy did on the wire, one JSON line per event; copied here from uptls, or
set `UPTLS_BACKEND=`) and the target, sends the requests with curl, and
stops everything it started.

## Files

- `run.sh`, `lib.sh` — the reproduction (POSIX sh).
- `template/target/` — the target's configuration for this scenario alone;
  `@RUN@`, `@DIR@` and `@PORT_n@` are filled in at run time.
- `template/backends.jsonl` — the mock upstream(s): certificate, key, TLS
  options, one listener per line.
- `pki/` — the certificates, keys and CRLs these name, and no others: {', '.join(files)}.
  They were generated by uptls for testing only.
- `bin/` — uptls-backend{' and uptls-proxy' if target.name == 'reference' else ''}.

## The configuration

```
{excerpt}
```
"""


def main(argv=None):
    ap = argparse.ArgumentParser(prog="make repro")
    ap.add_argument("--target", required=True)
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--target-bin", default="")
    ap.add_argument("--out", default="")
    a = ap.parse_args(argv)
    if not a.scenario:
        fail("give SCENARIO=<scenario id>, e.g. SCENARIO=trust/unknown-root-refused")
    try:
        target = targets.get(a.target, a.target_bin or None)
        target.find_binary()
        info = target.version_info()
        pki = pki_mod.build()
        cat = {s.id: s for s in sc_mod.load_catalogue(entities=pki.entities)}
    except UptlsError as e:
        fail(str(e))
    sc = cat.get(a.scenario)
    if sc is None:
        close = difflib.get_close_matches(a.scenario, cat, n=3)
        fail(f"SCENARIO={a.scenario}: no such scenario" +
             (f" (did you mean {', '.join(close)}?)" if close else ""))
    target.pki = pki  # as Run sets it: an adapter may need the PKI to decide
    why = target.unsupported(sc)
    if why:
        fail(f"{sc.id} is unsupported on {target.name}: {why}")
    keys = sorted({k for s in sc.steps for k in s.expect} - CHECKED)
    if keys:
        fail(f"{sc.id}: run.sh cannot check {', '.join(keys)} yet; use "
             f"`make conformance TARGET={a.target} SCENARIOS={sc.id} KEEP=1` instead")
    out = os.path.abspath(a.out or os.path.join(
        ROOT, "reports", "out", "repro", f"{target.name}--{sc.id.replace('/', '--')}"))
    tmp = f"{out}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        run = Run(target, [sc], pki, keep=True, run_root=tmp)
        result = run.execute()[0]
        job = run.jobs[0]
        if not job.backends or not target.run_dir:
            raise UptlsError(f"the run did not get as far as starting the target: "
                             f"{result['verdict']}: {result['reason']}")
        folder = Folder(run, pki, tmp)
        folder.port(target.port)
        for u in job.units.values():
            folder.port(target.address(u)[1])
        for b in job.backends.values():
            folder.port(b.port)
        folder.write_target()
        folder.write_backends(job)
        os.makedirs(os.path.join(tmp, "bin"))
        shutil.copy2(os.path.join(BIN, "uptls-backend"), os.path.join(tmp, "bin"))
        default_bin = shlex.quote(info["binary"])
        if target.name == "reference":
            shutil.copy2(info["binary"], os.path.join(tmp, "bin", "uptls-proxy"))
            default_bin = "$HERE/bin/uptls-proxy"
        script = run_sh(target, info, sc, job, folder, len(folder.ports), default_bin)
        files = folder.write_pki()
        shutil.copy2(LIB, os.path.join(tmp, "lib.sh"))
        with open(os.path.join(tmp, "run.sh"), "w") as f:
            f.write(script)
        os.chmod(os.path.join(tmp, "run.sh"), 0o755)
        with open(os.path.join(tmp, "README.md"), "w") as f:
            f.write(readme(target, info, sc, result, target.deviations().get(sc.id), files,
                           result.get("config_excerpt", "")))
        shutil.rmtree(run.run_dir, ignore_errors=True)
    except (UptlsError, OSError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        fail(str(e))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    print(f"uptls repro: {sc.id} on {info['name']} {info['version']}: uptls says "
          f"{result['verdict']}")
    print(f"  wrote {out}/ -- run {out}/run.sh (exit 0: behaves as documented, "
          "1: the finding reproduces, 2: could not run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
