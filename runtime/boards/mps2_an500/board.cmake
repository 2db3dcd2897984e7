# QEMU mps2-an500: Cortex-M7 (FPv5, double-precision). QEMU 7.2 clocks its SysTick at 25 MHz
# like the an386 (the same ELF gives identical tick counts on both machines).
set(TT_BOARD_CPU_FLAGS -mcpu=cortex-m7 -mthumb -mfloat-abi=hard -mfpu=fpv5-d16)
set(TT_BOARD_QEMU_MACHINE mps2-an500)
set(TT_BOARD_CPU_HZ 25000000)
