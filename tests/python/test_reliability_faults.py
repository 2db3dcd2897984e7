"""Fault containment on the emulated Cortex-M4 (issue 11): a broken schedule entry that makes a
kernel write into flash, and a kernel that overflows the stack, are stopped by the MPU with a
clear report on the semihosting console (exit status 121) instead of corrupting memory; the
peak stack is reported. Firmware: tests/firmware/fault/ (real runtime and board support)."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def elf(tmp_path_factory):
    b = tmp_path_factory.mktemp("fault") / "build"
    subprocess.run(["cmake", "-S", str(ROOT / "tests" / "firmware" / "fault"), "-B", str(b),
                    f"-DTT_RUNTIME={ROOT / 'runtime'}",
                    f"-DCMAKE_TOOLCHAIN_FILE={ROOT / 'runtime' / 'toolchains' / 'arm-none-eabi.cmake'}"],
                   check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(b), "-j2"], check=True, capture_output=True)
    return b / "fault.elf"


def _run(elf, wd, mode):
    (wd / "tt_fault.cfg").write_text(mode)
    cmd = ["qemu-system-arm", "-M", "mps2-an386", "-icount", "shift=0", "-display", "none",
           "-monitor", "none", "-serial", "none", "-chardev", "stdio,id=sh0",
           "-semihosting-config", "enable=on,target=native,chardev=sh0", "-kernel", str(elf)]
    p = subprocess.run(cmd, cwd=wd, capture_output=True, text=True, timeout=60)
    mem = dict(re.findall(r"(\w+)=(\d+)", re.search(r"^MEM (.*)$", p.stdout, re.M).group(1)))
    return p.returncode, p.stdout, {k: int(v) for k, v in mem.items()}


def test_the_same_schedule_into_the_arena_runs_and_reports_its_peak_stack(elf, tmp_path):
    rc, out, mem = _run(elf, tmp_path, "o")
    assert rc == 0, out
    assert "run TT_OK" in out and "OK arena written" in out and "FAULT" not in out
    assert 0 < mem["stack_peak"] < mem["stack_reserved"] == 4096


def test_a_schedule_entry_writing_to_flash_faults_through_the_mpu(elf, tmp_path):
    rc, out, _ = _run(elf, tmp_path, "w")
    assert rc == 121, out
    assert "init TT_OK" in out  # the entry is inside its region: only the MPU can stop it
    m = re.search(r"^FAULT: MemManage: data access outside the MPU regions .*addr=(0x[0-9a-f]+) "
                  r"pc=0x[0-9a-f]+ CFSR=(\d+)$", out, re.M)
    assert m, out
    assert int(m.group(1), 16) < 0x00400000  # the faulting address is in flash
    assert int(m.group(2)) & 0x82 == 0x82  # DACCVIOL with a valid MMFAR
    assert "run " not in out and "arena" not in out  # nothing ran after the fault


def test_stack_overflow_is_caught_by_the_guard_region(elf, tmp_path):
    rc, out, mem = _run(elf, tmp_path, "s")
    assert rc == 121, out
    assert re.search(r"^FAULT: stack overflow", out, re.M), out
    assert mem["stack_peak"] > mem["stack_reserved"]  # it reached the guard below the reserve
    assert "run " not in out
