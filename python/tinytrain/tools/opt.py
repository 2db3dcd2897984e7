"""`tinytrain-opt`: run tinytrain passes on an MLIR file (the driver of the lit tests).

    tinytrain-opt -p 'autodiff{trainable=fc.weight,fc.bias lr=0.5},to-linalg' in.mlir
    tinytrain-opt --split-input-file invalid.mlir      # verify each chunk, print diagnostics

Options of a pass go in braces, space-separated `key=value`; passes are separated by commas
outside braces. Without `-p` the input is parsed, verified and printed back.
"""

from __future__ import annotations

import argparse
import re
import sys

from tinytrain.errors import CompileError
from tinytrain.irtext import new_context, parse_module
from tinytrain.transforms import PASSES


def parse_pipeline(text: str) -> list[tuple[str, dict[str, str]]]:
    """`'a{k=v x=y},b'` -> `[("a", {"k": "v", "x": "y"}), ("b", {})]`."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    if cur.strip():
        out.append(cur)
    passes = []
    for item in out:
        m = re.fullmatch(r"\s*([\w-]+)\s*(?:\{(.*)\})?\s*", item)
        if not m:
            raise SystemExit(f"tinytrain-opt: cannot parse pass '{item}'")
        name, opts = m.group(1), m.group(2) or ""
        if name not in PASSES:
            raise SystemExit(f"tinytrain-opt: unknown pass '{name}'; passes: {', '.join(PASSES)}")
        kv = {}
        for tok in opts.split():
            if "=" not in tok:
                raise SystemExit(f"tinytrain-opt: option '{tok}' of pass '{name}' must be key=value")
            k, v = tok.split("=", 1)
            kv[k.replace("-", "_")] = v
        passes.append((name, kv))
    return passes


def run(text: str, pipeline) -> str:
    ctx = new_context()
    module = parse_module(text, ctx, stage="parse")
    for name, opts in pipeline:
        cls = PASSES[name]()
        try:
            p = cls(**opts)
        except TypeError as e:
            raise CompileError(f"bad options for pass '{name}': {e}", stage=name) from None
        module = p.run(module, ctx)
    return str(module)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="tinytrain-opt", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="MLIR file ('-' for stdin)")
    ap.add_argument("-p", "--passes", default="", help="pass pipeline, e.g. 'autodiff{lr=0.1},to-linalg'")
    ap.add_argument("--split-input-file", action="store_true",
                    help="process each '// -----' chunk separately; exit 1 if any chunk failed")
    args = ap.parse_args(argv)
    text = sys.stdin.read() if args.input == "-" else open(args.input).read()
    pipeline = parse_pipeline(args.passes)
    chunks = re.split(r"^// -----\s*$", text, flags=re.M) if args.split_input_file else [text]
    failed = False
    outputs = []
    for chunk in chunks:
        try:
            outputs.append(run(chunk, pipeline))
        except CompileError as e:
            failed = True
            print(f"error: {e}", file=sys.stderr)
    print("\n// -----\n".join(outputs))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
