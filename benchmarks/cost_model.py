"""Projected GPU time of each restorer, from the work it is counted doing and per-component GPU costs.

The counts are measured: each restorer runs at its node defaults, 20 steps, on the face demo's x5
super-resolution through ComfyUI's executor, and its `info` reports the network calls and VAE passes
(decodes, encodes, decoder JVPs / VJPs) that the run made; the counts do not depend on the image size (the
`fitted` solver's probes do below 72 latent cells; the face demo has 625, as many as any real image needs).
The component costs are H100 timings (bf16) of the real networks at that size:
  SDXL 1024²: 70 ms per network call, 89 ms per decode, 50 ms per encode, 202 ms per decoder VJP
  SD1.5 512²: 35 ms per call, 22 ms per decode, 12 ms per encode, 42 ms per decoder VJP
(a decoder JVP is taken at the cost of a VJP). Plain euler from an empty latent (20 calls + 1 decode)
is the baseline; DPS is its counted work (per step a call, a backward through the model at twice a
call, a decode and a decoder VJP) next to the 9.0 s / 24.8 GB measured for SDXL.

Run: .venv/bin/python benchmarks/cost_model.py
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "scripts"))
import comfy_harness  # noqa: E402
from oracle_problems import node_defaults  # noqa: E402

STEPS = 20
COMPONENT_MS = {  # call, decode, encode, decoder VJP (or JVP)
    "SD1.5 512²": (35.0, 22.0, 12.0, 42.0),
    "SDXL 1024²": (70.0, 89.0, 50.0, 202.0),
}
MEASURED_DPS_S = {"SDXL 1024²": 9.0}
WORK = re.compile(r"(\d+) network calls, \d+ VAE passes \((\d+) decodes, (\d+) encodes(?:, (\d+) decoder JVPs)?"
                  r"(?:, (\d+) decoder VJPs)?\)")
DING = {"variant": "ding"}   # 2 network calls per step
PIXEL = {"latent_solver": "pixel", **DING}
FITTED = {"latent_solver": "fitted", **DING}
RESTORERS = [("DInG Restore (pixel)", "InverseDInGRestore", PIXEL),
             ("DInG Restore (pixel, delayed)", "InverseDInGRestore", dict(PIXEL, variant="delayed")),
             ("DInG Restore (pixel, final_fit exact)", "InverseDInGRestore", dict(PIXEL, final_fit="exact")),
             ("DInG Restore (pixel, exact_below_noise 1)", "InverseDInGRestore", dict(PIXEL, exact_below_noise=1.0)),
             ("DInG Restore (pixel, exact_below_noise 3)", "InverseDInGRestore", dict(PIXEL, exact_below_noise=3.0)),
             ("DInG Restore (linearized)", "InverseDInGRestore", {"latent_solver": "linearized", **DING}),
             ("DInG Restore (fitted, every step decoded)", "InverseDInGRestore", dict(FITTED, predict_above_noise=0.0)),
             ("DInG Restore (fitted, ding: the default before frozen_proxy)", "InverseDInGRestore", FITTED),
             ("DInG Restore (fitted, decode_every 2)", "InverseDInGRestore", dict(FITTED, decode_every=2)),
             ("DInG Restore (fitted, frozen_proxy: the default)", "InverseDInGRestore", {}),
             ("DInG Restore (fitted, delayed)", "InverseDInGRestore", dict(FITTED, variant="delayed")),
             ("DInG Restore (fitted, final_fit exact)", "InverseDInGRestore", dict(FITTED, final_fit="exact")),
             ("DInG Restore (fitted, frozen_proxy, final_fit exact)", "InverseDInGRestore", {"final_fit": "exact"}),
             ("Spin", "InverseSpinRestore", {}),
             ("DCDP", "InverseDCDPRestore", {})]


def counted_work(engine, node_id, overrides):
    """(calls, decodes, encodes, jvps, vjps) that one run at the node defaults reports."""
    model, vae, faces, _, cond, _ = engine.nodes["InverseFacePriorLoader"]().load("eps", 1)
    operator = engine.nodes["InverseOperatorDownsample"]().build(5, "bicubic")[0]
    measurement = engine.nodes["InverseDegradeImage"]().degrade(faces, operator, 0.01, 0)[0]
    node = engine.nodes[node_id]
    options = {**node_defaults(node), "seed": 0, "steps": STEPS, "cfg": 1.0, **overrides}
    info = getattr(node(), node.FUNCTION)(model=model, positive=cond, negative=cond, vae=vae, measurement=measurement,
                                          operator=operator, **options)[-1]
    return tuple(int(n or 0) for n in WORK.search(info).groups())


def projected_seconds(work, components):
    calls, decodes, encodes, jvps, vjps = work
    call, decode, encode, vjp = components
    return (calls * call + decodes * decode + encodes * encode + (jvps + vjps) * vjp) / 1000.0


def main():
    engine = comfy_harness.boot(with_test_nodes=False)
    rows = [("euler (ignores y)", (STEPS, 1, 0, 0, 0))]
    rows += [(label, counted_work(engine, node_id, overrides)) for label, node_id, overrides in RESTORERS]
    rows.append(("DPS (counted)", (3 * STEPS, STEPS, 0, 0, STEPS)))  # a backward through the model = 2 calls
    names = list(COMPONENT_MS)
    print(f"{STEPS} steps; work counted at the node defaults on the face demo's x5 SR (the counts do not depend on "
          "the size), time projected from H100 component costs")
    print("| restorer | calls | decodes | encodes | JVPs | VJPs | " + " | ".join(f"{n} s (× euler)" for n in names) + " |")
    print("|---|---|---|---|---|---|" + "---|" * len(names))
    euler = {n: projected_seconds(rows[0][1], COMPONENT_MS[n]) for n in names}
    for label, work in rows:
        cells = []
        for n in names:
            seconds = projected_seconds(work, COMPONENT_MS[n])
            cells.append(f"{seconds:.2f} ({seconds / euler[n]:.1f}×)")
        print(f"| {label} | " + " | ".join(str(v) for v in work) + " | " + " | ".join(cells) + " |")
    for n, seconds in MEASURED_DPS_S.items():
        print(f"DPS measured on {n}: {seconds:.1f} s ({seconds / euler[n]:.1f}× the projected euler)")


if __name__ == "__main__":
    main()
