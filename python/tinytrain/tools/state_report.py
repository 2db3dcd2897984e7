"""The trained-state SRAM report (`tinytrain.state_report`) of one of the paper's int8 models,
per update option, without compiling anything:

    python -m tinytrain.tools.state_report mcunet-5fps --last 4 --momentum 0.9
"""

from __future__ import annotations

from tinytrain.state_report import CollectStateReport


def _main(argv=None) -> int:
    """`python -m tinytrain.tools.state_report MODEL [--last N] [--momentum M] [--master]`: the report
    of one of the paper's int8 models (`tinytrain.pretrained`) with a new fp32 head, training the
    weights and biases of its last N convs and the head (`autodiff` only: nothing is compiled)."""
    import argparse
    import json

    from tinytrain.pretrained import load_mcu_model
    from tinytrain.pretrained.graph import build_forward
    from tinytrain.pipeline import run_pipeline
    from tinytrain.transforms.autodiff import AutodiffPass

    ap = argparse.ArgumentParser(prog="python -m tinytrain.tools.state_report", description=_main.__doc__)
    ap.add_argument("model", help="mbv2-w0.35, proxyless-w0.3 or mcunet-5fps")
    ap.add_argument("--last", type=int, default=2, help="train the last N convs (weights, biases) and the head")
    ap.add_argument("--classes", type=int, default=10, help="classes of the new fp32 head")
    ap.add_argument("--momentum", type=float, default=0.0, help="SGD momentum (buffers are trained state)")
    ap.add_argument("--master", action="store_true", help="compile the trained conv weights as fp32 master copies")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    args = ap.parse_args(argv)
    m = load_mcu_model(args.model)
    convs = [c.name for c in m.convs()][-args.last:] if args.last > 0 else []
    trainable = [f"{c}.{p}" for c in convs for p in ("weight", "bias")] + ["fc.weight", "fc.bias"]
    g = build_forward(m, classifier="fp32", num_classes=args.classes,
                      master_weights=[f"{c}.weight" for c in convs] if args.master else ())
    sink: dict = {}
    run_pipeline(g.module, [AutodiffPass(trainable=tuple(trainable), momentum=args.momentum),
                            CollectStateReport(sink=sink)], stage="state-report")
    rep = sink["report"]
    print(json.dumps(rep.to_json(), indent=2) if args.json else rep.table())
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
