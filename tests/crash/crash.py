#!/usr/bin/env python3
"""The namenode crash test's driver (issue 8).

A seeded random workload (create, write, append, shrinking truncate, rename
of files and directories, delete, chmod, xattrs, symlinks, setrep) runs
through tests/crash/crash_client against a running local cluster, while the
namenode is killed with SIGKILL at a random moment of a random operation and
restarted with `caudal up`. Every acknowledged operation is applied to an
oracle model (path -> kind, mode, content, replication, xattrs). The one
operation in flight at a kill may or may not be applied, never half: after
the restart the namespace must equal the model without it or with it (a
write in flight may have written a prefix of its bytes, as HDFS allows).

After every restart: safe mode ends; the namespace equals the model; the
namenode's invariant checker passes, offline on the killed namenode's
metadata (caudal-namenode --check) and live (HTTP /check); `caudal fsck /`
is HEALTHY. Restarts alternate sync = always and sync = batch (a process
crash must lose nothing in either).

Run by tests/e2e/crash_nn.sh (which starts the cluster). Environment:
CRASH_SEED (replay), CRASH_KILLS, CRASH_TIME (seconds, a bound),
CRASH_CLIENT (the built client), CAUDAL (the CLI), CAUDAL_HOME,
CAUDAL_NAMENODE, CAUDAL_NN_HTTP_PORT, CAUDAL_LEASE_MS.
Prints the seed first and the figures last; exits 1 on any violation.
"""
import copy
import hashlib
import os
import random
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

SEED = int(os.environ.get("CRASH_SEED") or random.SystemRandom().randrange(1, 2**31))
KILLS = int(os.environ.get("CRASH_KILLS", "5"))
BOUND = float(os.environ.get("CRASH_TIME", "60"))
CLIENT = os.environ["CRASH_CLIENT"]
CAUDAL = os.environ["CAUDAL"]
HOME = os.environ["CAUDAL_HOME"]
NN = os.environ["CAUDAL_NAMENODE"]
# the namenode's HTTP port speaks HTTPS when the cluster has certificates
CA = os.path.join(HOME, "certs", "ca.crt")
HTTP = "%s://127.0.0.1:%s" % ("https" if os.path.exists(CA) and not os.path.exists(
    os.path.join(HOME, "insecure")) else "http",
                              os.environ["CAUDAL_NN_HTTP_PORT"])
LEASE_S = int(os.environ.get("CAUDAL_LEASE_MS", "2000")) / 1000.0
TMP = os.environ.get("T", "/tmp")
SABOTAGE = os.environ.get("CRASH_SABOTAGE") == "rollback"
# after a namenode kill, the chance of also killing a writer, a datanode
WRITER_SHARE = float(os.environ.get("CRASH_WRITER_SHARE", "0.3"))
DN_SHARE = float(os.environ.get("CRASH_DN_SHARE", "0.2"))
# every datanode of a pipeline at once (after a namenode kill): `make
# crashtest` turns it on; off in the short run of `make test`, which
# covers it with tests/e2e/core_alldn_killed.sh
ALLDN_SHARE = float(os.environ.get("CRASH_ALLDN_SHARE", "0"))
IO_MS = 2500  # a client gives up this long after the namenode died
ROOT = "/w"

rng = random.Random(SEED)
stats = {"kills": 0, "ops": 0, "acked": 0, "failed": 0, "inflight_applied": 0,
         "inflight_lost": 0, "checks": 0, "violations": 0, "writer_kills": 0,
         "dn_kills": 0}


def log(msg):
    print("crash: " + msg, flush=True)


def violation(msg):
    stats["violations"] += 1
    print("VIOLATION (seed %d): %s" % (SEED, msg), flush=True)


# ------------------------------------------------------------------ client

class Client:
    """A crash_client process: one operation per line, one answer each."""

    def __init__(self, timeout_ms):
        self.p = subprocess.Popen([CLIENT, NN, str(timeout_ms)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, bufsize=1)

    def op(self, *fields):
        self.p.stdin.write("\t".join(str(f) for f in fields) + "\n")
        self.p.stdin.flush()
        lines = self.lines = []  # what it printed, even if it dies midway
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError("crash_client exited during %r" % (fields[:2],))
            line = line.rstrip("\n")
            if line == "ok" or line.startswith("err "):
                return line == "ok", line, lines
            lines.append(line)

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(timeout=15)
        except Exception:
            self.p.kill()
            self.p.wait()


# ------------------------------------------------------------------ model
# path -> {"k": "d"|"f"|"l", "mode", "data" (bytes), "repl", "x" {name: bytes}, "t"}

def under(p, d):
    return p == d or p.startswith(d + "/")


def apply(m, op):
    """The model after op (a new dict); op is a tuple as sent."""
    m = dict(m)
    kind = op[0]
    if kind == "mkdir":
        m[op[1]] = {"k": "d", "mode": 0o755, "x": {}}
    elif kind == "put":
        old = m.get(op[1])
        e = {"k": "f", "mode": 0o644, "x": {}} if old is None else dict(old)
        e["data"] = op[4]
        e["repl"] = int(op[3])
        m[op[1]] = e
    elif kind == "append":
        e = dict(m[op[1]])
        e["data"] = e["data"] + op[3]
        m[op[1]] = e
    elif kind == "trunc":
        e = dict(m[op[1]])
        e["data"] = e["data"][:int(op[2])]
        m[op[1]] = e
    elif kind == "chmod":
        e = dict(m[op[1]])
        e["mode"] = int(op[2], 8)
        m[op[1]] = e
    elif kind == "mv":
        src, dst = op[1], op[2]
        moved = {p: e for p, e in m.items() if under(p, src)}
        for p in list(m):
            if under(p, dst) or under(p, src):
                del m[p]
        for p, e in moved.items():
            m[dst + p[len(src):]] = e
    elif kind == "rm":
        for p in list(m):
            if under(p, op[1]):
                del m[p]
    elif kind == "setx":
        e = dict(m[op[1]])
        e["x"] = dict(e["x"])
        e["x"][op[2]] = bytes.fromhex(op[3])
        m[op[1]] = e
    elif kind == "rmx":
        e = dict(m[op[1]])
        e["x"] = dict(e["x"])
        del e["x"][op[2]]
        m[op[1]] = e
    elif kind == "ln":
        m[op[2]] = {"k": "l", "t": op[1]}
    elif kind == "setrep":
        e = dict(m[op[1]])
        e["repl"] = int(op[2])
        m[op[1]] = e
    return m


def pick(lst):
    return lst[rng.randrange(len(lst))] if lst else None


def new_name(m, d, prefix):
    for _ in range(20):
        p = "%s/%s%d" % (d, prefix, rng.randrange(40))
        if p not in m:
            return p
    return None


SIZES = [0, 1, 100, 4096, 70000, 300000, 1100000]


def gen_op(m, meta_only=False):
    """A random operation legal in model m (meta_only: no data written,
    so that kills land in metadata operations too)."""
    dirs = [ROOT] + [p for p, e in m.items() if e["k"] == "d"]
    files = [p for p, e in m.items() if e["k"] == "f"]
    nodes = [p for p, e in m.items() if e["k"] != "l"]
    subdirs = [p for p, e in m.items() if e["k"] == "d"]
    while True:
        r = rng.random()
        if r < 0.10 and len(dirs) < 12:
            p = new_name(m, pick(dirs), "d")
            if p:
                return ("mkdir", p)
        elif r < 0.30 and not meta_only:
            p = pick(files) if files and rng.random() < 0.3 else new_name(m, pick(dirs), "f")
            if p:
                data = rng.randbytes(pick(SIZES))
                return ("put", p, None, rng.randint(1, 3), data)
        elif r < 0.40 and files and not meta_only:
            return ("append", pick(files), None, rng.randbytes(pick(SIZES[:6])))
        elif r < 0.48 and files:
            p = pick(files)
            if m[p]["data"]:
                return ("trunc", p, rng.randrange(len(m[p]["data"])))
        elif r < 0.58 and files:
            src = pick(files)
            dst = pick(files) if rng.random() < 0.3 else new_name(m, pick(dirs), "f")
            if dst and dst != src:
                return ("mv", src, dst)
        elif r < 0.66 and subdirs:
            src = pick(subdirs)
            d = pick([x for x in dirs if not under(x, src)])
            dst = new_name(m, d, "d") if d else None
            if dst:
                return ("mv", src, dst)
        elif r < (0.72 if len(m) < 60 else 0.9) and m:
            # deleting whole trees is rarer than making them; a namespace
            # past 60 entries shrinks, so that a long run stays small
            p = pick(list(m))
            if m[p]["k"] != "d" or rng.random() < 0.3:
                return ("rm", p)
        elif r < 0.79 and nodes:
            p = pick(nodes)
            mode = pick([0o755, 0o700, 0o750]) if m[p]["k"] == "d" else \
                pick([0o644, 0o600, 0o640, 0o664])
            return ("chmod", p, "%o" % mode)
        elif r < 0.86 and nodes:
            return ("setx", pick(nodes), "user.crash.k%d" % rng.randrange(4),
                    rng.randbytes(rng.randrange(1, 40)).hex())
        elif r < 0.89 and nodes:
            p = pick([n for n in nodes if m[n]["x"]])
            if p:
                return ("rmx", p, pick(sorted(m[p]["x"])))
        elif r < 0.95:
            p = new_name(m, pick(dirs), "l")
            if p:
                return ("ln", "target-%d/%s" % (rng.randrange(100), "x" * rng.randrange(30)), p)
        elif files:
            return ("setrep", pick(files), rng.randint(1, 3))


def send(cl, op):
    """Send op (writing a put's or append's bytes to a local file first)."""
    if op[0] in ("put", "append"):
        local = os.path.join(TMP, "crash-data")
        with open(local, "wb") as f:
            f.write(op[-1])
        fields = (op[0], op[1], local) + ((op[3],) if op[0] == "put" else ())
        if op[2]:  # written op[2] bytes at a time, each synced
            fields = (op[0] + "sync",) + fields[1:] + (op[2],)
    else:
        fields = op
    return cl.op(*fields)


def show(op):
    if op[0] in ("put", "append"):
        return "%s %s (%d bytes)" % (op[0], op[1], len(op[-1]))
    return " ".join(str(x) for x in op)


# ------------------------------------------------------------------ cluster

def daemon_pid(name):
    """The pid of a daemon of the cluster (namenode, dn1, ...) from its pid
    file, if that pid still runs the program the file names."""
    try:
        with open(os.path.join(HOME, "pids", name + ".pid")) as f:
            pid, prog = f.read().split("\n")[:2]
        pid = int(pid)
        exe = os.readlink("/proc/%d/exe" % pid).replace(" (deleted)", "")
        return pid if os.path.basename(exe) == prog else None
    except (OSError, ValueError):
        return None


def kill_pid(pid, what):
    os.kill(pid, signal.SIGKILL)
    for _ in range(200):
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except OSError:
            return
        time.sleep(0.02)
    raise RuntimeError("%s (pid %d) survived SIGKILL" % (what, pid))


def kill_nn():
    pid = daemon_pid("namenode")
    if pid is None:
        raise RuntimeError("no namenode to kill")
    kill_pid(pid, "namenode")


def http(path):
    try:
        ctx = ssl.create_default_context(cafile=CA) if HTTP.startswith("https") else None
        with urllib.request.urlopen(HTTP + path, timeout=30, context=ctx) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_until(what, fn, secs):
    end = time.time() + secs
    while True:
        v = fn()
        if v:
            return v
        if time.time() > end:
            raise RuntimeError("timed out waiting for " + what)
        time.sleep(0.2)


def safemode_off():
    try:
        code, body = http("/")
    except OSError:
        return False
    return code == 200 and "\nsafemode off\n" in body


def offline_check():
    nn_bin = os.path.join(os.path.dirname(CAUDAL), "caudal-namenode")
    r = subprocess.run([nn_bin, "--check", "--dir=" + os.path.join(HOME, "nn"),
                        "--log_level=error"], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        violation("offline check of the killed namenode's metadata:\n" + r.stdout + r.stderr)
    return r.stdout.split("\n")[0]


def live_check():
    with open(os.path.join(HOME, "nn", "check.token")) as f:
        tok = f.read().strip()
    # a delete frees its blocks from the map just after its sync: the
    # workload is quiet here, a second look rules out that moment anyway
    for attempt in range(2):
        code, body = http("/check?token=" + tok)
        if code == 200:
            return body
        time.sleep(0.5)
    violation("invariant check (HTTP %d):\n%s" % (code, body))
    return body


def fsck_healthy():
    r = subprocess.run([CAUDAL, "fsck", "/"], capture_output=True, text=True, timeout=60)
    return r.returncode == 0 and "HEALTHY" in r.stdout


# ------------------------------------------------------------------ checking

def observe(cl):
    ok, line, lines = cl.op("dump", ROOT)
    if not ok:
        return None, line
    obs = {}
    for ln in lines:
        f = ln.split("\t")
        if f[0] == "D":
            obs[f[1]] = {"k": "d", "mode": int(f[2], 8), "x": {}}
        elif f[0] == "F":
            obs[f[1]] = {"k": "f", "mode": int(f[2], 8), "size": int(f[3]), "sha": f[4],
                         "repl": int(f[5]), "uc": f[6] == "1", "x": {}}
        elif f[0] == "L":
            obs[f[1]] = {"k": "l", "t": f[2]}
        elif f[0] == "X":
            obs[f[1]]["x"][f[2]] = bytes.fromhex(f[3])
    return obs, None


def diff(m, obs, loose=None):
    """Differences between model m and observed obs; a path in loose (the
    file a write in flight touched) may hold any prefix of its model data."""
    out = []
    for p in sorted(set(m) | set(obs)):
        e, o = m.get(p), obs.get(p)
        if e is None or o is None:
            out.append("%s: %s" % (p, "missing" if o is None else "not in the model"))
            continue
        if e["k"] != o["k"]:
            out.append("%s: kind %s, model %s" % (p, o["k"], e["k"]))
            continue
        if e["k"] == "l":
            if e["t"] != o["t"]:
                out.append("%s: link '%s', model '%s'" % (p, o["t"], e["t"]))
            continue
        if e["mode"] != o["mode"]:
            out.append("%s: mode %o, model %o" % (p, o["mode"], e["mode"]))
        if e["x"] != o["x"]:
            out.append("%s: xattrs %s, model %s" % (p, sorted(o["x"]), sorted(e["x"])))
        if e["k"] == "f":
            if e["repl"] != o["repl"]:
                out.append("%s: replication %d, model %d" % (p, o["repl"], e["repl"]))
            if p == loose and o["size"] <= len(e["data"]):
                want = hashlib.sha256(e["data"][:o["size"]]).hexdigest()
            else:
                want = hashlib.sha256(e["data"]).hexdigest()
                if o["size"] != len(e["data"]):
                    out.append("%s: size %d, model %d" % (p, o["size"], len(e["data"])))
                    continue
            if o["sha"] != want:
                out.append("%s: content differs from the model (size %d)" % (p, o["size"]))
    return out


def settle(m, obs, inflight, durable=None):
    """The model after a restart: m itself, or m with the operation in
    flight applied (a write in flight: any prefix of its bytes, at least
    the durable size its last hsync acknowledged)."""
    d0 = diff(m, obs)
    if not d0 and inflight and durable is not None:
        violation("'%s' was hsynced at %d bytes, yet the file is as before it" %
                  (show(inflight), durable))
        return None
    if not d0:
        if inflight:
            stats["inflight_lost"] += 1
        return m
    if inflight:
        m1 = apply(m, inflight)
        loose = inflight[1] if inflight[0] in ("put", "append") else None
        d1 = diff(m1, obs, loose)
        if not d1 and loose and durable is not None and obs[loose]["size"] < durable:
            d1 = ["%s: size %d after recovery, but %d bytes were hsynced" %
                  (loose, obs[loose]["size"], durable)]
        if not d1:
            stats["inflight_applied"] += 1
            if loose:
                e = dict(m1[loose])
                e["data"] = e["data"][:obs[loose]["size"]]
                m1[loose] = e
            return m1
        violation("after the kill during '%s' the namespace is neither before nor after it:\n"
                  "  against before: %s\n  against after: %s" %
                  (show(inflight), "; ".join(d0[:8]), "; ".join(d1[:8])))
    else:
        violation("acknowledged operations missing or changed:\n  " + "\n  ".join(d0[:20]))
    return None


def check_round(m, inflight, what, durable=None):
    """After a kill: safe mode left, leases recovered, namespace against
    the model, invariants, fsck. Returns the settled model (None after a
    violation)."""
    try:
        wait_until("safe mode to end", safemode_off, 60)
    except RuntimeError:
        violation("safe mode not left 60 s after the %s" % what)
    cl = Client(10000)
    try:
        deadline = time.time() + 6 * LEASE_S + 20
        while True:
            obs, err = observe(cl)
            # a write in flight at the kill leaves its file open until its
            # lease expires and is recovered: compare once it is closed
            if obs is not None and not any(o.get("uc") for o in obs.values()):
                break
            if time.time() > deadline:
                if obs is None:
                    raise RuntimeError("cannot list the namespace: " + err)
                violation("files still open %ds after the restart: %s" %
                          (6 * LEASE_S + 20, [p for p, o in obs.items() if o.get("uc")]))
                break
            time.sleep(0.5)
    finally:
        cl.close()
    m = settle(m, obs, inflight, durable)
    stats["checks"] += 1
    body = live_check()
    if not fsck_wait():
        violation("fsck / not HEALTHY 60 s after the %s" % what)
    elif m is not None:
        cl = Client(10000)
        try:
            bad = replicas_settle(cl, m)
        finally:
            cl.close()
        if bad:
            violation("replicas on the datanodes' disks after the %s: %s" % (what, bad))
    if m is not None:
        log("after the %s: %d entries match, %s" % (what, len(m), body.split("\n")[0]))
    return m


def disk_replicas():
    """(block id, gen) -> datanodes holding it finalized, from their disks."""
    out = {}
    for dn in sorted(os.listdir(HOME)):
        cur = os.path.join(HOME, dn, "current")
        if not dn.startswith("dn") or not os.path.isdir(cur):
            continue
        for sub in os.listdir(cur):
            try:
                names = os.listdir(os.path.join(cur, sub))
            except OSError:
                continue
            for f in names:
                parts = f.split("_")
                if len(parts) == 3 and parts[0] == "blk" and parts[2].isdigit():
                    out.setdefault((int(parts[1]), int(parts[2])), []).append(dn)
    return out


def replicas_settle(cl, m):
    """Once reports, deletions and re-replication are done, the datanodes'
    disks hold exactly the namespace's blocks: each at its generation, as
    many times as its file's replication, none orphaned. Returns a
    description of what differs after 30 s, or None."""
    want = {}
    for p, e in m.items():
        if e["k"] != "f":
            continue
        ok, line, lines = cl.op("blocks", p)
        if not ok:
            return "cannot get the blocks of '%s': %s" % (p, line)
        for b in lines:
            _, bid, gen, _ = b.split("\t")
            want[(int(bid), int(gen))] = e["repl"]
    end = time.time() + 30
    while True:
        have = disk_replicas()
        bad = []
        for k, n in want.items():
            if len(have.get(k, [])) != n:
                bad.append("block %d gen %d: %d replicas on disk, replication %d" %
                           (k[0], k[1], len(have.get(k, [])), n))
        for k, dns in have.items():
            if k not in want:
                bad.append("block %d gen %d on %s belongs to no file" % (k[0], k[1], ",".join(dns)))
        if not bad:
            return None
        if time.time() > end:
            return "; ".join(bad[:10])
        time.sleep(0.5)


def fsck_wait():
    end = time.time() + 60
    while time.time() < end:
        if fsck_healthy():
            return True
        time.sleep(0.5)
    return False


# ------------------------------------------------------------------ other kills

def big_write(m):
    files = [p for p, e in m.items() if e["k"] == "f"]
    if files and rng.random() < 0.4:
        return ("append", pick(files), CHUNK, rng.randbytes(rng.choice([300000, 1100000])))
    dirs = [ROOT] + [p for p, e in m.items() if e["k"] == "d"]
    p = new_name(m, pick(dirs), "f") or pick(files)
    return ("put", p, CHUNK, rng.randint(1, 3), rng.randbytes(rng.choice([300000, 2500000])))


CHUNK = 65536  # a kill's write is synced this often


def synced(cl):
    """The size the last "synced N" line of a write acknowledged."""
    n = [int(x.split()[1]) for x in cl.lines if x.startswith("synced ")]
    return n[-1] if n else None


def writer_round(m):
    """SIGKILL the writer in the middle of a put or append: the namenode
    must recover its lease and close the file at a prefix of what was
    written, everything else untouched."""
    cl = Client(IO_MS)
    op = big_write(m)
    timer = threading.Timer(rng.uniform(0.01, 0.5), kill_pid, (cl.p.pid, "crash_client"))
    timer.start()
    try:
        ok, line, _ = send(cl, op)
    except (BrokenPipeError, RuntimeError):
        ok, line = False, "writer killed"
    timer.join()
    durable = synced(cl)
    cl.close()
    stats["writer_kills"] += 1
    stats["ops"] += 1
    if ok:
        stats["acked"] += 1
        m = apply(m, op)
    log("writer killed during '%s': %s (synced %s)" %
        (show(op), "acknowledged" if ok else line, durable))
    return check_round(m, None if ok else op, "writer kill %d" % stats["writer_kills"],
                       durable)


def all_datanodes_round(m, mode):
    """SIGKILL every datanode in the middle of a write that hsyncs, restart
    them: what the last acknowledged hsync covered must survive (the
    datanodes keep hsynced bytes of replicas being written), and the
    file be readable and HEALTHY once they are back."""
    cl = Client(IO_MS)
    dirs = [ROOT] + [p for p, e in m.items() if e["k"] == "d"]
    op = ("put", new_name(m, pick(dirs), "f") or ROOT + "/all-dn-%d" % stats["ops"], CHUNK,
          rng.randint(1, 3), rng.randbytes(2500000))

    def kill_all():
        for i in (1, 2, 3):
            pid = daemon_pid("dn%d" % i)
            if pid is not None:
                kill_pid(pid, "dn%d" % i)
    timer = threading.Timer(rng.uniform(0.1, 0.6), kill_all)
    timer.start()
    ok, line, _ = send(cl, op)
    timer.join()
    durable = synced(cl)
    cl.close()
    stats["dn_kills"] += 3
    stats["ops"] += 1
    if ok:
        stats["acked"] += 1
        m = apply(m, op)
    log("every datanode killed during '%s': %s (synced %s)" %
        (show(op), "acknowledged" if ok else line, durable))
    restart(mode)
    return check_round(m, None if ok else op, "kill of every datanode", durable)


def datanode_round(m, mode):
    """SIGKILL a datanode in the middle of a write, restart it with caudal
    up: the write carries on or fails whole, fsck is HEALTHY again once
    re-replication is done."""
    name = "dn%d" % rng.randint(1, 3)
    pid = daemon_pid(name)
    if pid is None:
        raise RuntimeError("no %s to kill" % name)
    cl = Client(IO_MS)
    op = big_write(m)
    timer = threading.Timer(rng.uniform(0.01, 0.5), kill_pid, (pid, name))
    timer.start()
    ok, line, _ = send(cl, op)
    timer.join()
    durable = synced(cl)
    cl.close()
    stats["dn_kills"] += 1
    stats["ops"] += 1
    if ok:
        stats["acked"] += 1
        m = apply(m, op)
    log("%s killed during '%s': %s (synced %s)" %
        (name, show(op), "acknowledged" if ok else line, durable))
    restart(mode)  # the namenode runs on; caudal up starts the datanode
    return check_round(m, None if ok else op, "%s kill" % name, durable)


# ------------------------------------------------------------------ self-test

def sabotage(k):
    """CRASH_SABOTAGE=rollback, for tests/e2e/crash_selftest.sh: the
    metadata after kill 1 is put back after kill 2, as a namenode that
    lost its last acknowledged transactions would come back. The driver
    must report it (the rounds write no data then, so safe mode ends)."""
    nn = os.path.join(HOME, "nn")
    old = os.path.join(TMP, "nn-at-kill-1")
    if k == 1:
        shutil.copytree(nn, old)
    elif k == 2:
        shutil.rmtree(nn)
        shutil.copytree(old, nn)
        log("sabotage: the metadata of kill 1 put back")


# ------------------------------------------------------------------ main

def restart(mode):
    env = dict(os.environ, CAUDAL_SYNC=mode)
    r = subprocess.run([CAUDAL, "up"], env=env, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("caudal up failed:\n" + r.stdout + r.stderr)


def main():
    log("seed %d (replay with CRASH_SEED=%d), %d kills, at most %ds" % (SEED, SEED, KILLS, BOUND))
    start = time.time()
    code, _ = http("/check")
    if code != 403:
        violation("/check without the token answered HTTP %d, not 403" % code)
    cl = Client(IO_MS)
    ok, line, _ = cl.op("mkdir", ROOT)
    if not ok:
        raise RuntimeError("cannot make %s: %s" % (ROOT, line))
    m = {}
    running = os.environ.get("CAUDAL_SYNC") or "always"
    for k in range(1, KILLS + 1):
        if time.time() - start > BOUND:
            log("time bound of %ds reached after %d kills" % (BOUND, k - 1))
            break
        # operations back to back while a timer kills the namenode at a
        # random moment: the one running then is in flight, maybe applied
        killed = threading.Event()

        def killer():
            kill_nn()
            killed.set()
        timer = threading.Timer(rng.uniform(0.05, 0.8), killer)
        meta_only = rng.random() < 0.5 or SABOTAGE
        # the self-test needs acknowledged operations between its kills
        # to see them lost: there the timer starts after three
        acked_here = 0
        if not SABOTAGE:
            timer.start()
        inflight = None
        while True:
            op = gen_op(m, meta_only)
            stats["ops"] += 1
            was_killed = killed.is_set()
            ok, line, _ = send(cl, op)
            if ok:
                stats["acked"] += 1
                m = apply(m, op)
                acked_here += 1
                if SABOTAGE and acked_here == 3:
                    timer.start()
            elif killed.is_set():
                inflight = None if was_killed else op
                break
            else:
                # nothing was killed: a refusal must change nothing (the
                # next restart checks it like any acknowledged state)
                stats["failed"] += 1
                log("'%s' refused: %s" % (show(op), line))
            if killed.is_set():
                break
        timer.join()
        stats["kills"] += 1
        cl.close()
        log("kill %d during '%s': %s; offline check: %s" %
            (k, show(op), "acknowledged" if ok else line, offline_check()))
        if SABOTAGE:
            sabotage(k)
        was, running = running, ("batch" if k % 2 else "always")
        restart(running)
        m = check_round(m, inflight, "namenode kill %d (sync %s)" % (k, was))
        if m is not None and rng.random() < WRITER_SHARE:
            m = writer_round(m)
        if m is not None and rng.random() < DN_SHARE:
            m = datanode_round(m, running)
        if m is not None and ALLDN_SHARE and rng.random() < ALLDN_SHARE:
            m = all_datanodes_round(m, running)
        if m is None:
            log("stopping at the first violation; replay with CRASH_SEED=%d" % SEED)
            break
        cl = Client(IO_MS)
    if m is not None:
        # the oracle itself must see a change it was not told of
        cl.op("mkdir", ROOT + "/unmodelled")
        obs, err = observe(cl)
        if obs is None or not diff(m, obs):
            violation("the oracle did not notice an unmodelled mkdir (%s)" % err)
    cl.close()
    log("figures: seed %d: %d namenode kills (and %d writer kills, %d datanode "
        "kills), %d operations (%d acknowledged, %d refused), in flight at a kill: %d "
        "applied, %d not; %d namespace checks, %d violations, %.0fs" %
        (SEED, stats["kills"], stats["writer_kills"], stats["dn_kills"], stats["ops"],
         stats["acked"], stats["failed"],
         stats["inflight_applied"], stats["inflight_lost"], stats["checks"],
         stats["violations"], time.time() - start))
    return 1 if stats["violations"] else 0


if __name__ == "__main__":
    try:
        rc = main()
    except Exception:
        # not a violation found but the driver unable to go on (a restart
        # that failed, a client that died): exit 2 with the seed
        import traceback
        traceback.print_exc()
        log("driver stopped, seed %d, after %d kills, %d violations" %
            (SEED, stats["kills"], stats["violations"]))
        rc = 2
    sys.exit(rc)
