# QEMU mps2-an386: Cortex-M4F (single-precision FPv4), 25 MHz CPU clock.
set(TT_BOARD_CPU_FLAGS -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16)
set(TT_BOARD_QEMU_MACHINE mps2-an386)
set(TT_BOARD_CPU_HZ 25000000)
