"""The static stack bound of a linked Cortex-M firmware (`lowering/cortexm/stack_bound.py`).

On a hand-written program (`tests/fixtures/stack/frames.S`, assembled and linked here with
arm-none-eabi-gcc) whose frames are known: the deepest thread path (call, tail call, indirect
call through a table resolved to every address-taken function, vpush, sub.w/subw, pre-indexed
store), the exception frames per preemption level, the reserve (bound + margin in whole KB),
GCC's -fstack-usage numbers, and the refusals (a reachable function moving sp by a register;
recursion through an indirect call), and why function pointers are read from the relocations
the firmware keeps (`--emit-relocs`). The device side (reserve >= the painted stack peak of a
real int8 step) is in test_int8_device_training.py. About 1 s.
"""

import subprocess
from pathlib import Path

import pytest

from tinytrain.lowering.cortexm import stack_bound as sb

SOURCE = Path(__file__).resolve().parents[1] / "fixtures" / "stack" / "frames.S"


def link(tmp_path, *defines, relocs: bool = True) -> Path:
    """The fixture linked at 0 as the firmware is (with ``--emit-relocs`` unless ``relocs=False``)."""
    elf = tmp_path / ("frames" + "".join(f"_{d}" for d in defines) + ("" if relocs else "_norel") + ".elf")
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard",
                    "-mfpu=fpv5-d16", "-nostdlib", "-nostartfiles", "-Wl,-Ttext=0", "-Wl,-e,reset",
                    *(["-Wl,--emit-relocs"] if relocs else []),
                    *[f"-Wa,--defsym,{d}=1" for d in defines], str(SOURCE), "-o", str(elf)], check=True)
    return elf


def test_bound_of_known_frames(tmp_path):
    b = sb.analyze(link(tmp_path))
    # reset 8 + dispatcher 24 + kernel_big (push 36 + subw 1000), deeper than leaf (vpush 16 +
    # sub.w 256) and the tail call (tail 16 + leaf 272); `unused` (4000 B, mov sp) is not reachable
    assert b.path == [("reset", 8), ("dispatcher", 24), ("kernel_big", 1036)]
    assert b.thread_depth == 1068
    assert sorted(b.indirect_callees) == ["kernel_big", "kernel_small"]
    frame = sb.EXCEPTION_FRAME
    assert frame == 108  # 26 words (FP context) + alignment pad
    assert b.exceptions == [("priority 0 (SysTick, configurable faults)", "systick", frame + 0),
                            ("HardFault", "hardfault", frame + 40 + 272), ("NMI", "nmi", frame + 4)]
    assert b.bound == 1068 + 3 * frame + 312 + 4 == 1708
    assert b.reserve == 2048 == sb.reserve_for(1708)
    assert "reserve 2048 B" in b.describe()


def test_function_pointers_come_from_relocations(tmp_path):
    """Without the relocations every aligned word counts as a possible pointer: the model
    constant equal to `unused`'s address then makes it an indirect callee, and its `mov sp, r0`
    is refused (conservative, never silent)."""
    elf = link(tmp_path, relocs=False)
    nm = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    assert "00000098 t unused" in nm  # the constant in the fixture is this address | 1
    with pytest.raises(sb.UnboundedStack, match=r"unused moves the stack pointer by a register.*mov sp, r0"):
        sb.analyze(elf)


def test_reserve_is_bound_plus_margin_in_whole_kb():
    assert sb.STACK_MARGIN == 256
    assert [sb.reserve_for(n) for n in (0, 768, 769, 1792, 1793)] == [1024, 1024, 2048, 2048, 3072]


def test_stack_usage_files_are_read_and_the_larger_frame_kept(tmp_path):
    elf = link(tmp_path)
    su = tmp_path / "kernels.c.su"
    su.write_text("kernels.c:3:6:kernel_small\t2000\tstatic\nkernels.c:9:6:leaf\t8\tstatic\n")
    b = sb.analyze(elf, [su])
    assert b.path == [("reset", 8), ("dispatcher", 24), ("kernel_small", 2000)]
    su.write_text("kernels.c:3:6:kernel_small\t16\tdynamic\n")
    with pytest.raises(sb.UnboundedStack, match=r"kernel_small moves the stack pointer by a register.*"
                                                r"-fstack-usage: dynamic"):
        sb.analyze(elf, [su])


def test_dynamic_stack_is_refused(tmp_path):
    with pytest.raises(sb.UnboundedStack, match=r"tail moves the stack pointer by a register "
                                                r"\(alloca or a variable-length array\): 0x[0-9a-f]+: sub(\.w)? sp, sp, r0") as e:
        sb.analyze(link(tmp_path, "DYNAMIC"))
    assert e.value.stage == "stack-bound"


def test_recursion_through_an_indirect_call_is_refused(tmp_path):
    with pytest.raises(sb.UnboundedStack, match=r"recursion .*: dispatcher -> kernel_small -> dispatcher"):
        sb.analyze(link(tmp_path, "RECURSE"))
