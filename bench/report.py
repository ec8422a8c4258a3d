#!/usr/bin/env python3
"""Render bench/run.sh results: a table on stdout and bench/RESULTS.md.

Usage: report.py WORKDIR OUT_MD
WORKDIR holds meta.json, baseline.json and <server>.<workload>.json files written by run.sh
(<server> is gati or distribution; a <server>.skipped file holds the reason it did not run).
"""
import json
import os
import sys

SERVERS = ["gati", "distribution"]
MIB = 1024 * 1024


def load(work, name):
    path = os.path.join(work, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        text = f.read().strip()
    return json.loads(text) if text else None


def load_repeated(work, name):
    """A file of JSON lines (one per repetition) -> the median run by mb_per_s, with the RSS
    fields taken as the worst over all runs and the list of all throughputs attached."""
    path = os.path.join(work, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        runs = [json.loads(l) for l in f if l.strip()]
    if not runs:
        return None
    ordered = sorted(runs, key=lambda r: r["mb_per_s"])
    med = dict(ordered[len(ordered) // 2])
    med["runs_mb_per_s"] = [r["mb_per_s"] for r in runs]
    if "peak_rss_kib" in med:
        worst = max(runs, key=lambda r: r["peak_rss_kib"] - r["idle_rss_kib"])
        med["idle_rss_kib"], med["peak_rss_kib"] = worst["idle_rss_kib"], worst["peak_rss_kib"]
        med["hwm_kib"] = max(r["hwm_kib"] for r in runs)
        med["idle_rss_kib_first"] = runs[0]["idle_rss_kib"]
    return med


def main():
    work, out_md = sys.argv[1], sys.argv[2]
    meta = load(work, "meta.json") or {}
    baseline = load(work, "baseline.json") or {}
    res, skipped = {}, {}
    for s in SERVERS:
        sk = os.path.join(work, s + ".skipped")
        if os.path.exists(sk):
            skipped[s] = open(sk).read().strip()
        res[s] = {w: (load_repeated if w.endswith("_big") else load)(work, "%s.%s.json" % (s, w))
                  for w in ("push_big", "pull_big", "push_small", "manifest_get")}

    def val(s, w, k):
        r = res[s].get(w)
        return None if r is None else r.get(k)

    def rss_above_idle(s):
        r = res[s].get("push_big")
        if not r or not r.get("rss_samples"):
            return None
        return (r["peak_rss_kib"] - r["idle_rss_kib"]) / 1024.0

    def hwm_above_idle(s):
        r = res[s].get("push_big")
        if not r or not r.get("hwm_kib"):
            return None
        return (r["hwm_kib"] - r.get("idle_rss_kib_first", r["idle_rss_kib"])) / 1024.0

    # (label, unit, getter, higher_is_better, ratio target or None, absolute target for gati)
    rows = [
        ("manifest GET by tag, c=%s" % meta.get("wrk_conc", "?"), "req/s",
         lambda s: val(s, "manifest_get", "req_per_s"), 3.0),
        ("  p50 latency", "ms", lambda s: val(s, "manifest_get", "p50_ms"), None),
        ("  p99 latency", "ms", lambda s: val(s, "manifest_get", "p99_ms"), None),
        ("%s x %s KiB blob pushes, c=%s" % (meta.get("small_count", "?"), meta.get("small_kib", "?"),
                                             meta.get("small_conc", "?")), "ops/s",
         lambda s: val(s, "push_small", "ops_per_s"), 2.0),
        ("  p50 latency", "ms", lambda s: val(s, "push_small", "p50_ms"), None),
        ("  p99 latency", "ms", lambda s: val(s, "push_small", "p99_ms"), None),
        ("%s MiB monolithic push (median of %s)" % (meta.get("big_mib", "?"), meta.get("big_repeat", 1)), "MB/s",
         lambda s: val(s, "push_big", "mb_per_s"), 2.0),
        ("%s MiB pull (median of %s)" % (meta.get("big_mib", "?"), meta.get("big_repeat", 1)), "MB/s",
         lambda s: val(s, "pull_big", "mb_per_s"), 1.0),
        ("  pull / page-cache cat", "x",
         lambda s: (val(s, "pull_big", "mb_per_s") / baseline["cat_mb_per_s"])
         if val(s, "pull_big", "mb_per_s") and baseline.get("cat_mb_per_s") else None, None),
        ("peak RSS above idle during big push", "MiB", rss_above_idle, None),
        ("  VmHWM above idle", "MiB", hwm_above_idle, None),
    ]

    def fmt(v):
        if v is None:
            return "n/a"
        return "%.1f" % v if abs(v) >= 10 else "%.2f" % v

    table = []
    header = ["workload", "unit", "gati", "distribution", "gati/dist", "target", "status"]
    for label, unit, get, target in rows:
        g, d = get("gati"), get("distribution")
        ratio = (g / d) if (g is not None and d) else None
        if target is not None:
            tgt = ">= %.0fx" % target
            status = "not run" if ratio is None else ("PASS" if ratio >= target else "FAIL")
        elif label.startswith("peak RSS"):
            tgt = "< 64 MiB"
            status = "not run" if g is None else ("PASS" if g < 64 else "FAIL")
        else:
            tgt, status = "", ""
        shown = "" if unit in ("MiB", "x") else ("n/a" if ratio is None else "%.2fx" % ratio)
        table.append([label, unit, fmt(g), fmt(d), shown, tgt, status])

    cat = baseline.get("cat_mb_per_s")
    widths = [max(len(str(r[i])) for r in table + [header]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(widths[i]) for i, c in enumerate(header)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(widths[i]) for i, c in enumerate(r)) for r in table]
    print("\n".join(lines))
    if cat:
        print("\npage-cache baseline: cat %s MiB file > /dev/null: %.1f MB/s" % (meta.get("big_mib", "?"), cat))
    problems = []
    for s in SERVERS:
        if s in skipped:
            print("\n%s: NOT RUN: %s" % (s, skipped[s]))
        for w in ("push_small", "manifest_get"):
            r = res[s].get(w) or {}
            if r.get("errors") or r.get("non2xx") or r.get("socket_errors"):
                problems.append("%s %s had errors: %s" % (s, w, json.dumps(r)))
    for p in problems:
        print("WARNING: " + p)

    md = ["# Benchmark results: gati-registry vs CNCF distribution", "",
          "Generated by `bench/run.sh` on %s. Both servers on 127.0.0.1, same machine, same workload; "
          "distribution uses its filesystem driver with access logs off. Ratios are gati/distribution "
          "(for latency and RSS rows lower is better and no ratio target applies)." % meta.get("date", "?"), "",
          "Machine: %s; %s CPUs; %s; kernel %s; load average before the run: %s." % (
              meta.get("cpu", "?"), meta.get("nproc", "?"), meta.get("mem", "?"), meta.get("kernel", "?"),
              meta.get("loadavg", "?")),
          "Versions: gati `%s`; distribution `%s`; wrk `%s`." % (meta.get("gati_version", "n/a"),
                                                                meta.get("dist_version", "n/a"),
                                                                meta.get("wrk_version", "?")), ""]
    md.append("| " + " | ".join(header) + " |")
    md.append("|" + "|".join("---" for _ in header) + "|")
    for r in table:
        md.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
    md.append("")
    if cat:
        md.append("Page-cache baseline for the pull: `cat` of the %s MiB file to /dev/null ran at %.1f MB/s."
                  % (meta.get("big_mib", "?"), cat))
        md.append("")
    md += ["Targets: manifest GET >= 3x, small-blob pushes >= 2x, 1 GiB push >= 2x, 1 GiB pull >= 1x "
           "(ratios of gati to distribution), and gati's RSS during the 1 GiB push < 64 MiB above idle.", "",
           "Workloads: big push = POST then one streamed PUT `?digest=` of new content each repetition; big pull = one GET of that blob, "
           "bytes discarded; small pushes = POST + PUT `?digest=` of distinct random blobs over keep-alive "
           "connections; manifest GET = `wrk -t%s -c%s -d%ss` on `/v2/<repo>/manifests/<tag>` after a warm-up. "
           "RSS is sampled from /proc/PID/status (VmRSS, every 10 ms) during each push; the row shows the "
           "largest peak-minus-idle over the repetitions, idle being VmRSS just before that push; VmHWM is "
           "the lifetime high-water mark minus the idle RSS before the first push." % (meta.get("wrk_threads", "?"), meta.get("wrk_conc", "?"), meta.get("wrk_secs", "?")), ""]
    if meta.get("note"):
        md += [meta["note"], ""]
    for s in SERVERS:
        if s in skipped:
            md += ["**%s was not run:** %s" % (s, skipped[s]), ""]
    for p in problems:
        md += ["**Warning:** " + p, ""]
    # What was changed to meet the targets, and why: kept by hand in bench/NOTES.md, carried into
    # every generated report so a re-run never loses it.
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "NOTES.md")
    if os.path.exists(notes):
        md += [open(notes).read().strip(), ""]
    md += ["Raw results:", "", "```json", json.dumps({"meta": meta, "baseline": baseline, "results": res,
                                                     "skipped": skipped}, indent=1, sort_keys=True), "```", ""]
    # The cluster section is written by bench/cluster.sh between its markers; a re-run of this
    # benchmark keeps it.
    begin, end = "<!-- cluster:begin -->", "<!-- cluster:end -->"
    if os.path.exists(out_md):
        previous = open(out_md).read()
        if begin in previous and end in previous:
            md += [begin + previous.split(begin, 1)[1].split(end, 1)[0] + end, ""]
    with open(out_md, "w") as f:
        f.write("\n".join(md))
    print("\nwrote %s" % out_md)


if __name__ == "__main__":
    main()
