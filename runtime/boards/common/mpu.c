/* Run-time SRAM guard with the PMSAv7 MPU (Cortex-M4/M7): QEMU maps 4 MB of RAM, so without
 * it an access past the budget (__ram_size) or a stack overflow past the reserve would go
 * unnoticed. Regions: flash read-only, exactly the RAM budget read-write, peripherals, and a
 * no-access guard just below the stack reserve. PRIVDEFENA = 0: everything else faults.
 * HardFault runs with the MPU off (HFNMIENA = 0), so the fault handler can still report.
 */
#include <stdint.h>

#include "board.h"

#define TT_MPU_CTRL (*(volatile uint32_t*)0xE000ED94u)
#define TT_MPU_RNR (*(volatile uint32_t*)0xE000ED98u)
#define TT_MPU_RBAR (*(volatile uint32_t*)0xE000ED9Cu)
#define TT_MPU_RASR (*(volatile uint32_t*)0xE000EDA0u)

#define TT_AP_NONE 0u
#define TT_AP_RW 3u
#define TT_AP_RO 6u
#define TT_GUARD_BYTES 1024u

extern uint32_t __bss_end__, __StackLimit, __ram_size;

static void tt_mpu_region(uint32_t n, uint32_t base, uint32_t log2_size, uint32_t ap,
                          uint32_t xn, uint32_t srd, uint32_t attrs) {
  TT_MPU_RNR = n;
  TT_MPU_RBAR = base;
  TT_MPU_RASR = (xn << 28) | (ap << 24) | attrs | (srd << 8) | ((log2_size - 1u) << 1) | 1u;
}

static uint32_t tt_log2_ceil(uint32_t v) {
  uint32_t l = 5u;
  while ((1u << l) < v) ++l;
  return l;
}

void tt_board_mpu_enable(void) {
  const uint32_t ram = (uint32_t)(uintptr_t)&__ram_size;
  const uint32_t normal = (1u << 17); /* TEX=0 C=1 B=0: normal memory */
  tt_mpu_region(0u, 0x00000000u, 22u, TT_AP_RO, 0u, 0u, normal); /* 4 MB flash */
  /* RAM: a power-of-two region whose eighths (subregions) beyond the budget are disabled. */
  uint32_t log2 = tt_log2_ceil(ram);
  uint32_t eighth = (1u << log2) / 8u;
  uint32_t srd = 0u;
  for (uint32_t i = 0; i < 8u; ++i) {
    if ((i + 1u) * eighth > ram) srd |= 1u << i;
  }
  tt_mpu_region(1u, 0x20000000u, log2, TT_AP_RW, 1u, srd, normal);
  tt_mpu_region(2u, 0x40000000u, 29u, TT_AP_RW, 1u, 0u, (1u << 18) | (1u << 16)); /* device */
  /* __stack_size is a multiple of 1 KB (linker ASSERT), so the guard is size-aligned. */
  uint32_t guard = (uint32_t)(uintptr_t)&__StackLimit - TT_GUARD_BYTES;
  if ((uint32_t)(uintptr_t)&__bss_end__ <= guard) {
    tt_mpu_region(3u, guard, 10u, TT_AP_NONE, 1u, 0u, normal);
  }
  __asm__ volatile("dsb\n isb" ::: "memory");
  TT_MPU_CTRL = 1u; /* ENABLE; PRIVDEFENA = 0; HFNMIENA = 0 */
  __asm__ volatile("dsb\n isb" ::: "memory");
}

void tt_board_mpu_disable(void) {
  TT_MPU_CTRL = 0u;
  __asm__ volatile("dsb\n isb" ::: "memory");
}
