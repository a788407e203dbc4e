"""Registers, loads, barriers and shuffles a thread of the keypoint-decode kernels on sm_90, compiled
without a GPU by Triton's own compiler (ptxas, cuobjdump from Triton's bundle): what decides how many
programs stay resident while the maps stream. WholeBody's sizes (96 x 72) specialise the arguments.

    PYTHONPATH=src python benchmarks/keypoint_decode_registers.py
"""

import os
import subprocess
import tempfile

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from gaussdraw.ops.kernels.keypoint_decode import keypoint_maximum_kernel, keypoint_step_kernel

BIN = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
DIVISIBLE = {"heat_ptr", "weights_ptr", "keypoints_ptr", "scores_ptr", "maps", "height", "size"}  # by 16


def usage(kernel, constexprs: dict, warps: int) -> str:
    names = kernel.arg_names
    signature = {n: "constexpr" if n in constexprs else "*fp32" if n.endswith("_ptr") else
                 "fp32" if n == "udp_eps" else "i32" for n in names}
    attrs = {(i,): [["tt.divisibility", 16]] for i, n in enumerate(names) if n in DIVISIBLE}
    compiled = triton.compile(ASTSource(fn=kernel, signature=signature, constexprs=constexprs, attrs=attrs),
                              target=GPUTarget("cuda", 90, 32), options={"num_warps": warps})
    with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
        cubin.write(compiled.asm["cubin"])
        cubin.flush()
        out = subprocess.run([os.path.join(BIN, "cuobjdump"), "--dump-resource-usage", cubin.name],
                             capture_output=True, text=True).stdout
    registers = next(word for line in out.splitlines() for word in line.split() if word.startswith("REG:"))
    ptx = compiled.asm["ptx"]
    resident = 65536 // (int(registers[4:]) * 32 * warps)
    counts = "  ".join(f"{op} {ptx.count(op):3d}" for op in ("ld.global.v4", "ld.global", "bar.sync", "shfl.sync"))
    return f"{registers:7s} ({resident:2d} programs/SM by registers)  {counts}"


def main() -> None:
    common = dict(KSIZE=11, REGION=16)
    for refine in range(4):
        for maps, block, warps in ((1, 2048, 4), (1, 1024, 2), (1, 4096, 8), (1, 8192, 8), (2, 4096, 8), (4, 2048, 8)):
            shape = dict(common, REFINE=refine, MAPS=maps, BLOCK=block, TILE_W=4 * warps)
            print(f"maximum refine {refine} maps {maps} block {block} warps {warps}: "
                  + usage(keypoint_maximum_kernel, shape, warps))
    for refine in (2, 3):
        for maps, warps in ((16, 4), (8, 2), (4, 1), (32, 4), (16, 2), (8, 1)):
            print(f"step refine {refine} maps {maps} warps {warps}: "
                  + usage(keypoint_step_kernel, dict(common, REFINE=refine, MAPS=maps, TILE_W=4 * warps), warps))


if __name__ == "__main__":
    main()
