/* 64-bit SysTick counter on the CPU clock (wrap interrupt extends the 24-bit counter). */
#include "board.h"

#define TT_SYST_CSR (*(volatile uint32_t*)0xE000E010u)
#define TT_SYST_RVR (*(volatile uint32_t*)0xE000E014u)
#define TT_SYST_CVR (*(volatile uint32_t*)0xE000E018u)
#define TT_SYST_RELOAD 0x00FFFFFFu

static volatile uint32_t tt_timer_wraps;

void SysTick_Handler(void) { ++tt_timer_wraps; }

void tt_board_timer_start(void) {
  TT_SYST_CSR = 0u;
  TT_SYST_RVR = TT_SYST_RELOAD;
  TT_SYST_CVR = 0u;
  tt_timer_wraps = 0u;
  TT_SYST_CSR = 7u; /* enable, interrupt, processor clock */
  while (TT_SYST_CVR == 0u) {
  } /* CVR reads 0 until the first reload */
}

uint64_t tt_board_timer_ticks(void) {
  uint32_t hi, lo;
  do {
    hi = tt_timer_wraps;
    lo = TT_SYST_CVR;
  } while (hi != tt_timer_wraps);
  return (uint64_t)hi * (TT_SYST_RELOAD + 1u) + (TT_SYST_RELOAD - lo);
}
