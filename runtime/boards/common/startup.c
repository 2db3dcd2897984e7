/* Reset handler, vector table, FPU enable, stack painting and the SRAM report (mps2 boards). */
#include <stdint.h>
#include <string.h>

#include "board.h"

#define TT_PAINT 0xC5C5C5C5u

extern uint32_t __etext, __data_start__, __data_end__, __bss_start__, __bss_end__;
extern uint32_t __heap_start__, __StackTop, __StackLimit, __ram_size, __stack_size;
extern int main(void);

void Reset_Handler(void) __attribute__((noreturn, naked));
void tt_board_start(void) __attribute__((noreturn, used));
void tt_board_fault(void);
void SysTick_Handler(void);

/* The first thing: enable the FPU (CP10/CP11 full access), before any FP instruction. */
void Reset_Handler(void) {
  __asm__ volatile(
      "ldr r0, =0xE000ED88\n"
      "ldr r1, [r0]\n"
      "orr r1, r1, #(0xF << 20)\n"
      "str r1, [r0]\n"
      "dsb\n"
      "isb\n"
      "b tt_board_start\n");
}

void tt_board_start(void) {
  uint32_t* src = &__etext;
  for (uint32_t* d = &__data_start__; d < &__data_end__;) *d++ = *src++;
  for (uint32_t* d = &__bss_start__; d < &__bss_end__;) *d++ = 0u;
  uint32_t sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  /* Paint everything between .bss and (current sp - 64) so the report finds the peak. */
  for (volatile uint32_t* p = &__heap_start__; (uint32_t)(uintptr_t)p < sp - 64u;) *p++ = TT_PAINT;
  tt_board_mpu_enable();
  int rc = main();
  tt_board_mpu_disable(); /* the painted-stack scan reads the guard region */
  tt_board_report_memory();
  tt_board_exit(rc);
}

void tt_board_report_memory(void) {
  uint32_t data = (uint32_t)((uintptr_t)&__data_end__ - (uintptr_t)&__data_start__);
  uint32_t bss = (uint32_t)((uintptr_t)&__bss_end__ - (uintptr_t)&__bss_start__);
  const uint32_t* p = &__heap_start__;
  while (p < &__StackTop && *p == TT_PAINT) ++p;
  uint32_t stack_peak = (uint32_t)((uintptr_t)&__StackTop - (uintptr_t)p);
  tt_board_puts("MEM ram_total=");
  tt_board_put_u64((uint32_t)(uintptr_t)&__ram_size);
  tt_board_puts(" data=");
  tt_board_put_u64(data);
  tt_board_puts(" bss=");
  tt_board_put_u64(bss);
  tt_board_puts(" stack_reserved=");
  tt_board_put_u64((uint32_t)(uintptr_t)&__stack_size);
  tt_board_puts(" stack_peak=");
  tt_board_put_u64(stack_peak);
  tt_board_puts(" sram_peak=");
  tt_board_put_u64((uint64_t)data + bss + stack_peak);
  tt_board_puts("\n");
}

/* Fault entry: pass the stack pointer of the exception frame (MSP; the firmware uses no PSP). */
void tt_board_fault(void) __attribute__((naked));
void tt_board_fault(void) {
  __asm__ volatile(
      "mrs r0, msp\n"
      "b tt_board_fault_report\n");
}

static void tt_board_put_hex(uint32_t v) {
  char buf[11] = {'0', 'x'};
  for (int i = 0; i < 8; ++i) buf[2 + i] = "0123456789abcdef"[(v >> (28 - 4 * i)) & 15u];
  buf[10] = '\0';
  tt_board_puts(buf);
}

/* A clear report: what faulted, at which address and instruction, and what it means here. */
void tt_board_fault_report(const uint32_t* frame) __attribute__((used, noreturn));
void tt_board_fault_report(const uint32_t* frame) {
  const uint32_t cfsr = *(volatile uint32_t*)0xE000ED28u;
  const uint32_t mmfar = *(volatile uint32_t*)0xE000ED34u;
  const uint32_t bfar = *(volatile uint32_t*)0xE000ED38u;
  tt_board_mpu_disable();
  const uint32_t guard = (uint32_t)(uintptr_t)&__StackLimit - 1024u;
  const uint32_t pc = frame[6];
  tt_board_puts("FAULT: ");
  if ((cfsr & 0xFFu) != 0u) {
    const int addr_valid = (cfsr & (1u << 7)) != 0u;
    if (cfsr & (1u << 4)) {
      tt_board_puts("stack overflow: exception stacking hit the MPU guard (MemManage MSTKERR)");
    } else if (addr_valid && mmfar >= guard && mmfar < guard + 1024u) {
      tt_board_puts("stack overflow into the guard region below the stack, addr=");
      tt_board_put_hex(mmfar);
    } else if (cfsr & (1u << 0)) {
      tt_board_puts("MemManage: instruction fetch from a no-execute region");
    } else {
      tt_board_puts("MemManage: data access outside the MPU regions (a write to flash or past "
                    "the SRAM budget), addr=");
      tt_board_put_hex(addr_valid ? mmfar : 0u);
    }
  } else if ((cfsr & 0xFF00u) != 0u) {
    tt_board_puts("BusFault, addr=");
    tt_board_put_hex((cfsr & (1u << 15)) ? bfar : 0u);
  } else if ((cfsr & 0xFFFF0000u) != 0u) {
    tt_board_puts((cfsr & (1u << 25)) ? "UsageFault: division by zero"
                  : (cfsr & (1u << 24)) ? "UsageFault: unaligned access"
                  : "UsageFault: undefined instruction or invalid state");
  } else {
    tt_board_puts("HardFault");
  }
  tt_board_puts(" pc=");
  tt_board_put_hex(pc);
  tt_board_puts(" CFSR=");
  tt_board_put_u64(cfsr);
  tt_board_puts("\n");
  tt_board_report_memory();
  tt_board_exit(121);
}

static void tt_board_default(void) {
  tt_board_puts("FAULT: unexpected interrupt\n");
  tt_board_exit(122);
}

__attribute__((section(".isr_vector"), used)) static void (*const tt_vectors[16])(void) = {
    (void (*)(void))(uintptr_t)&__StackTop, Reset_Handler, tt_board_default, tt_board_fault,
    tt_board_fault, tt_board_fault, tt_board_fault, 0, 0, 0, 0, tt_board_default,
    tt_board_default, 0, tt_board_default, SysTick_Handler,
};
