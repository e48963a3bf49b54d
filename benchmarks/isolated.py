"""Wall time and peak memory of one sampler run, each in a fresh process.

A process's resident memory only grows (the allocator keeps freed pages), so runs measured one
after another in one process see each other's peaks. Here every run gets its own process: it sets
up, warms up with the same cheap call, resets its peak-RSS counter, then records its peak RSS above
the RSS it had just before the measured call. glibc is told to map large blocks directly and give them back on free
(MALLOC_MMAP_THRESHOLD_), so that RSS follows live memory instead of the allocator's cache.
"""
import json
import os
import resource
import subprocess
import sys
import time

import psutil

MARK = "MEASURED "


def _reset_peak():
    """Linux: writing 5 to clear_refs resets the process's peak RSS (VmHWM), so the set-up's peak
    does not count; elsewhere the lifetime peak (ru_maxrss) is used."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _peak_rss(reset):
    if reset:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(run):
    """In the child: time `run()` and report its peak memory growth on stdout: resident memory on the
    CPU, torch.cuda.max_memory_allocated where ComfyUI runs on a CUDA device."""
    import torch
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = psutil.Process().memory_info().rss
        reset = _reset_peak()
    start = time.perf_counter()
    run()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if cuda else _peak_rss(reset)
    print(MARK + json.dumps({"seconds": seconds, "peak_growth": max(peak - before, 0)}), flush=True)


def run_isolated(script, label, timeout=1800):
    """In the parent: run `script --measure label` and return (seconds, peak growth in bytes)."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    result = subprocess.run([sys.executable, str(script), "--measure", label], capture_output=True, text=True,
                            env=env, timeout=timeout)
    for line in result.stdout.splitlines():
        if line.startswith(MARK):
            values = json.loads(line[len(MARK):])
            return values["seconds"], values["peak_growth"]
    raise RuntimeError(f"measuring {label!r} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def print_cost_table(title, labels, script):
    results = {label: run_isolated(script, label) for label in labels}
    base_time, base_memory = results[labels[0]]
    print(f"\n{title}")
    print("| sampler | wall time (s) | time / baseline | peak memory growth (MiB) | memory / baseline |")
    print("|---|---|---|---|---|")
    for label, (seconds, grown) in results.items():
        print(f"| {label} | {seconds:.2f} | {seconds / base_time:.2f} | {grown / 2**20:.1f} | "
              f"{grown / max(base_memory, 1):.2f} |")
