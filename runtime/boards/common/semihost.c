/* ARM semihosting calls (bkpt 0xab, r0 = operation, r1 = argument block). */
#include <string.h>

#include "board.h"

enum {
  TT_SH_OPEN = 0x01, TT_SH_CLOSE = 0x02, TT_SH_WRITE0 = 0x04, TT_SH_WRITE = 0x05,
  TT_SH_READ = 0x06, TT_SH_EXIT_EXTENDED = 0x20,
};

static uint32_t tt_sh_call(uint32_t op, const void* arg) {
  register uint32_t r0 __asm__("r0") = op;
  register const void* r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

void tt_board_puts(const char* s) { (void)tt_sh_call(TT_SH_WRITE0, s); }

void tt_board_put_u64(uint64_t value) {
  char buf[24];
  int i = (int)sizeof(buf) - 1;
  buf[i] = '\0';
  do {
    buf[--i] = (char)('0' + (int)(value % 10u));
    value /= 10u;
  } while (value != 0u && i > 0);
  tt_board_puts(&buf[i]);
}

int tt_board_open(const char* path, int write) {
  uint32_t block[3] = {(uint32_t)(uintptr_t)path, write ? 5u : 1u, (uint32_t)strlen(path)};
  return (int)tt_sh_call(TT_SH_OPEN, block);
}

uint32_t tt_board_read(int handle, void* buf, uint32_t n) {
  uint32_t block[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)buf, n};
  return n - tt_sh_call(TT_SH_READ, block);
}

uint32_t tt_board_write(int handle, const void* buf, uint32_t n) {
  uint32_t block[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)buf, n};
  return n - tt_sh_call(TT_SH_WRITE, block);
}

void tt_board_close(int handle) {
  uint32_t block[1] = {(uint32_t)handle};
  (void)tt_sh_call(TT_SH_CLOSE, block);
}

void tt_board_exit(int code) {
  uint32_t block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uint32_t)code};
  (void)tt_sh_call(TT_SH_EXIT_EXTENDED, block);
  for (;;) {
  }
}
