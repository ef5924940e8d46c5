"""Scrapes bpfman's /metrics as Prometheus would, with clients nobody in
bpfman wrote: Python's http.client (urllib) for HTTP and prometheus_client's
text-format parser (the Prometheus project's Python client) for the body.

    prom_scrape.py URL PROGRAM_ID

Checks: the Content-Type Prometheus negotiates for text 0.0.4; the body
parses; counters, gauges, the histogram and the info metric have the types
Prometheus expects; the program's run count grows between two scrapes.
Prints one line per check and `N passed, 0 failed` at the end; exits 1 on
any failure.
"""

import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

url, program_id = sys.argv[1], sys.argv[2]
passed, failed = 0, 0


def check(what, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what}: {detail}")


def scrape():
    with urllib.request.urlopen(url, timeout=10) as r:
        ctype = r.headers.get("Content-Type", "")
        body = r.read().decode()
    return ctype, {f.name: f for f in text_string_to_metric_families(body)}


def runs(families):
    fam = families.get("bpfman_program_run_count")
    for s in fam.samples if fam else []:
        if s.labels.get("program_id") == program_id:
            return s.value
    return None


ctype, fams = scrape()
check("content type is text/plain version 0.0.4", ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype)
want = {
    "bpfman_program_run_count": "counter",
    "bpfman_program_run_time_seconds": "counter",
    "bpfman_requests": "counter",
    "bpfman_request_duration_seconds": "histogram",
    "bpfman_operations": "counter",
    "bpfman_store_bytes": "gauge",
    "bpfman_map_max_entries": "gauge",
}
for name, typ in want.items():
    got = fams.get(name)
    check(f"{name} is a {typ}", got is not None and got.type == typ, got and got.type)
info = [f for n, f in fams.items() if n.startswith("bpfman_build")]
check("build info parses with a version label", any(s.labels.get("version") for f in info for s in f.samples), [f.name for f in info])
hist = fams.get("bpfman_request_duration_seconds")
buckets = [s for s in (hist.samples if hist else []) if s.name.endswith("_bucket")]
check("histogram has buckets up to +Inf", any(s.labels.get("le") == "+Inf" for s in buckets), len(buckets))
first = runs(fams)
check(f"program {program_id} has a run count", first is not None, sorted(fams))
grew = False
deadline = time.time() + 30
while first is not None and time.time() < deadline:
    time.sleep(0.2)
    now = runs(scrape()[1])
    if now is not None and now > first:
        grew = True
        break
check(f"program {program_id}'s run count grows between scrapes", grew, first)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
