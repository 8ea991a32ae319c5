#!/usr/bin/python3
"""Drives the web UI in headless Chromium for tests/e2e/webui.sh (not a test
by itself): opens every page of the namenode's and the jobtracker's UI,
compares what each shows with `caudal report`, `caudal fsck /`, the
user.caudal.blocks xattr and the jobs' status files (read through the
mount), checks that no name or error taken from the cluster ran as markup,
and fails on any error in the browser's console. Screenshots of each page
go into --shots.

Exit status 0: pass; 1: a check failed (the reason on stderr); 77: Chromium
cannot start at all."""
import argparse
import json
import os
import re
import subprocess
import sys
import time

try:
    from selenium import webdriver
    from selenium.common.exceptions import (NoAlertPresentException,
                                            UnexpectedAlertPresentException,
                                            WebDriverException)
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
except ImportError as e:  # python3-selenium is in deps.txt
    print("webui_check: selenium is missing: %s" % e, file=sys.stderr)
    sys.exit(1)

WAIT_S = float(os.environ.get("WEBUI_WAIT_S", "30"))


class Fail(Exception):
    pass


def say(msg):
    print("== " + msg, flush=True)


def sh(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def poll(what, fn):
    """fn() until it returns a true value (or raises Fail the last time),
    for at most WAIT_S seconds."""
    end = time.monotonic() + WAIT_S
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except (Fail, WebDriverException, KeyError, IndexError, ValueError) as e:
            last = e
            if isinstance(e, UnexpectedAlertPresentException):
                raise Fail("an alert opened: markup from the cluster ran as script")
        if time.monotonic() > end:
            raise Fail("%s: not within %.0f s (%s)" % (what, WAIT_S, last))
        time.sleep(0.3)


class UI:
    def __init__(self, args):
        self.a = args
        os.makedirs(args.profile, exist_ok=True)
        opts = webdriver.ChromeOptions()
        opts.binary_location = args.chromium
        for f in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1280,860", "--disable-extensions", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--user-data-dir=" + args.profile):
            opts.add_argument(f)
        # the namenode's HTTPS certificate comes from the cluster's own CA
        opts.set_capability("acceptInsecureCerts", True)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        svc = Service(executable_path=args.driver, log_path=os.path.join(args.profile, "driver.log"))
        self.d = webdriver.Chrome(service=svc, options=opts)
        self.d.set_page_load_timeout(WAIT_S)
        self.d.set_script_timeout(WAIT_S)

    def quit(self):
        self.d.quit()

    def console_errors(self):
        """Every console entry of level SEVERE so far (JavaScript errors,
        failed loads, CSP refusals)."""
        return [e for e in self.d.get_log("browser") if e.get("level") == "SEVERE"]

    def check_clean(self, where, expect_http=None):
        try:
            self.d.switch_to.alert
            raise Fail("%s: an alert is open: markup from the cluster ran as script" % where)
        except NoAlertPresentException:
            pass
        errs = self.console_errors()
        if expect_http:
            # the refusal the page was asked to show, and nothing else
            errs = [e for e in errs if not (e.get("source") == "network" and
                                            "status of %d" % expect_http in e.get("message", ""))]
        if errs:
            raise Fail("%s: browser console errors: %s" % (where, json.dumps(errs)))
        imgs = self.d.execute_script("return document.querySelectorAll('main img, main script, main iframe').length")
        if imgs:
            raise Fail("%s: %d element(s) made from data (img/script/iframe) in the page" % (where, imgs))
        if self.d.execute_script("return window.__pwned === true"):
            raise Fail("%s: script from the cluster's data ran" % where)

    def open(self, base, frag, view):
        """Load base#frag and wait until the page drew view (no error box)."""
        self.d.get(base + "#" + frag)
        self.d.refresh()  # a fragment-only change does not reload the page

        def ready():
            m = self.d.find_element(By.ID, "main")
            if m.get_attribute("data-view") != view or not m.get_attribute("data-drawn"):
                return False
            return m
        return poll("page %s#%s drawn" % (base, frag), ready)

    def redraw_until(self, what, fn):
        """fn() on the page as it refreshes itself, until true."""
        return poll(what, fn)

    def shot(self, name):
        if self.a.shots:
            os.makedirs(self.a.shots, exist_ok=True)
            self.d.save_screenshot(os.path.join(self.a.shots, "ui-%s.png" % name))

    def field(self, name, root=None):
        e = (root or self.d).find_element(By.CSS_SELECTOR, '[data-field="%s"]' % name)
        return e.get_attribute("data-value"), e.text

    def error_box(self):
        boxes = self.d.find_elements(By.CSS_SELECTOR, "main [data-error]")
        return boxes[0].text if boxes else None


def report(caudal):
    """`caudal report`: datanodes by address, and the totals."""
    out = sh(caudal, "report")
    dns, tot = {}, {}
    for line in out.splitlines()[1:]:
        m = re.match(r"^(\S+:\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d+)\s+(\S+)\s+(\S+)$", line)
        if m:
            dns[m.group(1)] = {"rack": m.group(2), "state": m.group(3), "capacity": m.group(4),
                               "blocks": int(m.group(7)), "id": m.group(9)}
        elif ": " in line:
            k, v = line.split(": ", 1)
            tot[k] = v
    return dns, tot


def fsck(caudal):
    out = subprocess.run([caudal, "fsck", "/"], capture_output=True, text=True).stdout
    return dict(l.split(": ", 1) for l in out.splitlines() if ": " in l and not l.startswith("problem"))


def attempt(what, fn):
    """Run fn (which reads the page and raises Fail on a mismatch) until it
    passes: the page redraws itself every few seconds, so an element read
    may go stale under the reader, and the cluster may still be settling."""
    return poll(what, lambda: fn() or True)


def check_overview(ui, a):
    say("overview against caudal report and caudal fsck /")
    ui.open(a.nn, "overview", "overview")

    def same():
        dns, tot = report(a.caudal)
        fk = fsck(a.caudal)
        got = {k: ui.field(k)[0] for k in ("live", "dead", "files", "blocks", "under_replicated",
                                              "missing", "corrupt", "safemode", "sync")}
        got["capacity_text"] = ui.field("capacity")[1]
        want = {"live": tot["live datanodes"], "dead": tot["dead datanodes"],
                "files": tot["files"], "blocks": tot["blocks"],
                "under_replicated": fk["under-replicated"], "missing": fk["missing"],
                "corrupt": fk["corrupt"], "safemode": tot["safe mode"], "sync": "always",
                "capacity_text": tot["capacity"]}
        if got != want:
            ui.d.refresh()
            raise Fail("overview shows %s, the CLI says %s" % (got, want))
        if int(want["under_replicated"]) == 0:
            raise Fail("the test's over-asked file is not under-replicated yet")
    attempt("overview equal to report and fsck", same)

    def events():
        # each event shown is in `caudal events`; the newest file made (the
        # evil name) is there as text; the private folder's are not
        rows = ui.d.find_elements(By.CSS_SELECTOR, "#events tbody tr")
        shown = [(r.get_attribute("data-txid"), r.find_elements(By.TAG_NAME, "td")[2].text,
                  r.get_attribute("data-path")) for r in rows]
        if not shown:
            raise Fail("no events shown")
        first = min(int(t) for t, _, _ in shown)
        log = {}
        for line in sh(a.caudal, "events", str(first)).splitlines():
            m = re.match(r"^(\d+) .*? (none|create|close|append|rename|unlink|mkdir|setattr) (.*)$", line)
            if m:
                log[m.group(1)] = (m.group(2), m.group(3))
        for txid, typ, path in shown:
            if txid not in log or log[txid][0] != typ or not log[txid][1].startswith(path + " "):
                raise Fail("event %s %s %s is not in caudal events: %s" % (txid, typ, path, log.get(txid)))
        if not any(p == "/data/" + a.evil for _, _, p in shown):
            raise Fail("recent events lack the evil file: %s" % shown)
        if any("/private/" in p for _, _, p in shown):
            raise Fail("recent events show a path under /private (mode 0700): %s" % shown)
        if not any("/private/later.txt" in v[1] for v in log.values()):
            raise Fail("caudal events lacks /private/later.txt, so its absence proves nothing")
        hidden = ui.field("events_hidden")[0]
        if not hidden or int(hidden) < 1:
            raise Fail("the overview does not say events were hidden")
        links = [e.get_attribute("href") for e in ui.d.find_elements(By.CSS_SELECTOR, "#nav a")]
        if not any(h.startswith(a.jt) for h in links):
            raise Fail("the overview links nowhere to the jobtracker's UI: %s" % links)
    attempt("recent events", events)
    ui.check_clean("overview")
    ui.shot("overview")


def check_datanodes(ui, a):
    say("datanodes against caudal report")
    ui.open(a.nn, "datanodes", "datanodes")

    def same():
        dns, _ = report(a.caudal)
        rows = ui.d.find_elements(By.CSS_SELECTOR, "#datanodes tbody tr")
        got = {}
        for r in rows:
            tds = r.find_elements(By.TAG_NAME, "td")
            got[r.get_attribute("data-addr")] = {
                "rack": tds[1].text, "state": ui.field("state", r)[1],
                "blocks": int(ui.field("blocks", r)[1]), "id": r.get_attribute("data-id")}
        want = {k: {"rack": v["rack"], "state": v["state"], "blocks": v["blocks"], "id": v["id"]}
                for k, v in dns.items()}
        if got != want or len(want) != 3:
            ui.d.refresh()
            raise Fail("datanodes page shows %s, report says %s" % (got, want))
        bars = ui.d.find_elements(By.CSS_SELECTOR, "#datanodes .bar")
        if len(bars) != 3:
            raise Fail("%d capacity bars for 3 datanodes" % len(bars))
    attempt("datanodes equal to report", same)
    ui.check_clean("datanodes")
    ui.shot("datanodes")


def names(ui):
    return {r.get_attribute("data-name") for r in ui.d.find_elements(By.CSS_SELECTOR, "#listing tbody tr")}


def check_browse(ui, a):
    say("file browser: folders, files and their blocks")
    ui.open(a.nn, "browse:/", "browse")

    def root():
        got, want = names(ui), set(os.listdir(a.mount))
        if got != want:
            raise Fail("/ lists %s, the mount %s" % (sorted(got), sorted(want)))
    attempt("listing of /", root)
    ui.open(a.nn, "browse:/data", "browse")

    def data():
        want = set(os.listdir(os.path.join(a.mount, "data")))
        rows = {r.get_attribute("data-name"): r
                for r in ui.d.find_elements(By.CSS_SELECTOR, "#listing tbody tr")}
        if set(rows) != want:
            raise Fail("/data lists %s, the mount %s" % (sorted(rows), sorted(want)))
        evil = rows[a.evil]
        if a.evil not in evil.text:
            raise Fail("the file named %r is not listed as text" % a.evil)
        size = int(ui.field("size", rows["a.txt"])[0])
        if size != os.stat(os.path.join(a.mount, "data", "a.txt")).st_size:
            raise Fail("a.txt's size in the listing is %d" % size)
    attempt("listing of /data", data)
    ui.check_clean("browse /data")
    ui.shot("browse")

    # a folder nobody may list is refused, not shown
    ui.open(a.nn, "browse:/private", "browse")

    def private():
        err = ui.error_box()
        if not err or "ermission" not in err:
            raise Fail("/private (0700) was not refused: %r" % err)
        if "secret" in ui.d.find_element(By.ID, "main").text:
            raise Fail("/private's entries are shown")
    attempt("/private refused", private)
    ui.check_clean("browse /private", expect_http=403)

    # paging: a folder of more entries than a page
    ui.open(a.nn, "browse:/many", "browse")
    first = poll("first page of /many", lambda: len(names(ui)) == 200 and names(ui))
    href = poll("next-page link", lambda: ui.d.find_element(By.PARTIAL_LINK_TEXT, "next").get_attribute("href"))
    ui.d.get(href)
    second = poll("second page of /many", lambda: names(ui) and names(ui) != first and names(ui))
    total = first | second
    want = set(os.listdir(os.path.join(a.mount, "many")))
    if len(total) != len(first) + len(second) or total != want:
        raise Fail("two pages of /many hold %d+%d names, the folder %d" % (len(first), len(second), len(want)))
    ui.check_clean("browse /many")

    say("a file's blocks against user.caudal.blocks")
    ui.open(a.nn, "file:/data/a.txt", "file")
    xa = sh("getfattr", "--absolute-names", "--only-values", "-n", "user.caudal.blocks",
            os.path.join(a.mount, "data", "a.txt"))
    want = {}
    for line in xa.splitlines():
        f = line.split()
        if len(f) == 3:  # "ID LENGTH HOST:PORT,HOST:PORT..."
            want[f[0]] = sorted(f[2].split(","))

    def blocks():
        got = {}
        for r in ui.d.find_elements(By.CSS_SELECTOR, "#blocks tbody tr"):
            hosts = [h.get_attribute("data-host") for h in r.find_elements(By.CSS_SELECTOR, "[data-host]")]
            got[r.get_attribute("data-block")] = sorted(hosts)
        if got != want or len(got) != a.blocks:
            ui.d.refresh()
            raise Fail("blocks page shows %s, user.caudal.blocks says %s" % (got, want))
        if ui.field("replication")[0] != "3":
            raise Fail("a.txt's replication shows %s" % ui.field("replication")[0])
    attempt("blocks equal to user.caudal.blocks", blocks)
    ui.check_clean("file /data/a.txt")
    ui.shot("file")

    # the file of the evil name: its page shows the name as text
    ui.open(a.nn, "file:" + quote("/data/" + a.evil), "file")

    def evil():
        if a.evil not in ui.d.find_element(By.CSS_SELECTOR, "main h1").text:
            raise Fail("the evil file's page does not show its name as text")
    attempt("the evil file's page", evil)
    ui.check_clean("file of the evil name")


def quote(s):
    from urllib.parse import quote as q
    return q(s, safe="")


def status_of(a, name):
    path = os.path.join(a.mount, "jobs", name, "status")
    with open(path) as f:
        st = dict(l.split(": ", 1) for l in f.read().splitlines() if ": " in l and not l.startswith("stderr"))
    return st


def check_jobs(ui, a):
    say("jobs against their status files")
    ui.open(a.jt, "jobs", "jobs")
    for name in (a.job_ok, a.job_bad, a.job_evil):
        st = status_of(a, name)

        def same():
            rows = {r.get_attribute("data-job"): r
                    for r in ui.d.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")}
            r = rows.get(name)
            if r is None:
                raise Fail("job %r is not listed (%s)" % (name, list(rows)))
            got = (ui.field("state", r)[1], ui.field("maps", r)[0], ui.field("reduces", r)[0],
                   ui.field("error", r)[1])
            want = (st["state"], st["maps_done"] + "/" + st["maps"],
                    st["reduces_done"] + "/" + st["reduces"], "" if st["error"] == "-" else st["error"])
            if got != want:
                raise Fail("job %r shows %s, its status file %s" % (name, got, want))
        attempt("job %r equal to its status" % name, same)

    def back():
        links = [e.get_attribute("href") for e in ui.d.find_elements(By.CSS_SELECTOR, "#nav a")]
        if not any(h.startswith(a.nn) for h in links):
            raise Fail("the jobs page links nowhere to the namenode's UI: %s" % links)
    attempt("link to the namenode's UI", back)
    ui.check_clean("jobs")
    ui.shot("jobs")

    say("a job's page: progress, counters and attempts against its files")
    ui.open(a.jt, "job:" + quote(a.job_ok), "job")
    st = status_of(a, a.job_ok)
    with open(os.path.join(a.mount, "jobs", a.job_ok, "counters")) as f:
        counters = sorted(tuple(l.split("\t")) for l in f.read().splitlines() if l)
    with open(os.path.join(a.mount, "jobs", a.job_ok, "tasks")) as f:
        tasks = sorted((l.split()[0], l.split()[1], l.split()[4]) for l in f.read().splitlines()
                       if l and not l.startswith("#"))

    def job_ok():
        if ui.field("maps")[0] != st["maps_done"] + "/" + st["maps"]:
            raise Fail("maps shows %s" % ui.field("maps")[0])
        got = sorted(tuple(r.get_attribute("data-counter").split("\t")) +
                     (r.find_elements(By.TAG_NAME, "td")[2].text,)
                     for r in ui.d.find_elements(By.CSS_SELECTOR, "#counters tbody tr"))
        if got != counters:
            raise Fail("counters show %s, the counters file %s" % (got, counters))
        att = sorted((r.find_elements(By.TAG_NAME, "td")[0].text, r.find_elements(By.TAG_NAME, "td")[1].text,
                      r.get_attribute("data-state"))
                     for r in ui.d.find_elements(By.CSS_SELECTOR, "#attempts tbody tr"))
        if att != tasks:
            raise Fail("attempts show %s, the tasks file %s" % (att, tasks))
    attempt("job %s equal to its files" % a.job_ok, job_ok)
    ui.check_clean("job %s" % a.job_ok)
    ui.shot("job")

    say("failed jobs: errors with markup in them are shown as text")
    ui.open(a.jt, "job:" + quote(a.job_bad), "job")
    st = status_of(a, a.job_bad)

    def bad():
        err = ui.d.find_element(By.CSS_SELECTOR, 'pre[data-field="error"]').text
        if err != st["error"] or "<img" not in err:
            raise Fail("the bad spec's error shows %r, its status %r" % (err, st["error"]))
    attempt("the bad spec's error", bad)
    ui.check_clean("job %s" % a.job_bad)

    ui.open(a.jt, "job:" + quote(a.job_evil), "job")

    def evil():
        failed = ui.d.find_elements(By.CSS_SELECTOR, '#attempts tr[data-state="FAILED"]')
        if len(failed) < 1:
            raise Fail("no failed attempt is listed for %r" % a.job_evil)
        text = ui.d.find_element(By.ID, "attempts").text
        if a.stderr_marker not in text:
            raise Fail("the failed attempts' stderr (%r) is not shown: %s" % (a.stderr_marker, text))
        if a.job_evil not in ui.d.find_element(By.CSS_SELECTOR, "main h1").text:
            raise Fail("the job's name is not shown as text")
    attempt("the failed job of the evil name", evil)
    ui.check_clean("job of the evil name")
    ui.shot("job-failed")


def main():
    p = argparse.ArgumentParser()
    for k in ("nn", "jt", "caudal", "mount", "evil", "job-ok", "job-bad", "job-evil",
              "stderr-marker", "profile"):
        p.add_argument("--" + k, required=True)
    p.add_argument("--blocks", type=int, required=True)
    p.add_argument("--shots", default="")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--driver", default="/usr/bin/chromedriver")
    a = p.parse_args()
    try:
        ui = UI(a)
    except WebDriverException as e:
        print("webui_check: Chromium cannot start: %s" % str(e).strip().splitlines()[0], file=sys.stderr)
        return 77
    try:
        t0 = time.monotonic()
        check_overview(ui, a)
        check_datanodes(ui, a)
        check_browse(ui, a)
        check_jobs(ui, a)
        say("browser checks done in %.1f s" % (time.monotonic() - t0))
        return 0
    except Fail as e:
        print("FAIL: %s" % e, file=sys.stderr)
        try:
            ui.shot("failure")
            print("page text: %s" % ui.d.find_element(By.TAG_NAME, "body").text[:3000], file=sys.stderr)
        except WebDriverException:
            pass
        return 1
    finally:
        ui.quit()


if __name__ == "__main__":
    sys.exit(main())
