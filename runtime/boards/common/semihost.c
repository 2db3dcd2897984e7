/* ARM semihosting calls (bkpt 0xab, r0 = operation, r1 = argument block). */
#include <string.h>

#include "board.h"

enum {
  TT_SH_OPEN = 0x01, TT_SH_CLOSE = 0x02, TT_SH_WRITE0 = 0x04, TT_SH_WRITE = 0x05,
  TT_SH_READ = 0x06, TT_SH_SEEK = 0x0A, TT_SH_FLEN = 0x0C, TT_SH_EXIT_EXTENDED = 0x20,
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

int tt_board_open(const char* path, int mode) {
  /* Semihosting fopen modes: 1 "rb", 5 "wb", 3 "r+b", 7 "w+b". */
  static const uint32_t kModes[4] = {1u, 5u, 3u, 7u};
  if (mode < 0 || mode > 3) return -1;
  uint32_t block[3] = {(uint32_t)(uintptr_t)path, kModes[mode], (uint32_t)strlen(path)};
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

int tt_board_seek(int handle, uint32_t pos) {
  uint32_t block[2] = {(uint32_t)handle, pos};
  return tt_sh_call(TT_SH_SEEK, block) == 0u ? 0 : -1;
}

int32_t tt_board_length(int handle) {
  uint32_t block[1] = {(uint32_t)handle};
  return (int32_t)tt_sh_call(TT_SH_FLEN, block);
}

void tt_board_exit(int code) {
  uint32_t block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uint32_t)code};
  (void)tt_sh_call(TT_SH_EXIT_EXTENDED, block);
  for (;;) {
  }
}
