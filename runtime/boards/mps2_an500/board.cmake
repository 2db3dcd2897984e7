# QEMU mps2-an500: Cortex-M7 (FPv5, double-precision), 50 MHz CPU clock.
set(TT_BOARD_CPU_FLAGS -mcpu=cortex-m7 -mthumb -mfloat-abi=hard -mfpu=fpv5-d16)
set(TT_BOARD_QEMU_MACHINE mps2-an500)
set(TT_BOARD_CPU_HZ 50000000)
