/* Host "board": the firmware harness built natively (tests with ASan/UBSan on real kernels).
 * Console and files go through stdio; the timer counts nanoseconds; there is no MPU. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "board.h"

#define TT_HOST_MAX_FILES 8

static FILE* tt_host_files[TT_HOST_MAX_FILES];
static uint64_t tt_host_t0;

void tt_board_puts(const char* s) {
  fputs(s, stdout);
  fflush(stdout);
}

void tt_board_put_u64(uint64_t value) {
  printf("%llu", (unsigned long long)value);
  fflush(stdout);
}

int tt_board_open(const char* path, int mode) {
  static const char* const kModes[4] = {"rb", "wb", "r+b", "w+b"};
  if (mode < 0 || mode > 3) return -1;
  for (int i = 0; i < TT_HOST_MAX_FILES; ++i) {
    if (tt_host_files[i] == NULL) {
      FILE* f = fopen(path, kModes[mode]);
      if (f == NULL) return -1;
      tt_host_files[i] = f;
      return i;
    }
  }
  return -1;
}

uint32_t tt_board_read(int handle, void* buf, uint32_t n) {
  return (uint32_t)fread(buf, 1u, n, tt_host_files[handle]);
}

uint32_t tt_board_write(int handle, const void* buf, uint32_t n) {
  uint32_t done = (uint32_t)fwrite(buf, 1u, n, tt_host_files[handle]);
  fflush(tt_host_files[handle]); /* like semihosting: in the host file at once */
  return done;
}

int tt_board_seek(int handle, uint32_t pos) {
  return fseek(tt_host_files[handle], (long)pos, SEEK_SET) == 0 ? 0 : -1;
}

int32_t tt_board_length(int handle) {
  FILE* f = tt_host_files[handle];
  long here = ftell(f);
  if (here < 0 || fseek(f, 0L, SEEK_END) != 0) return -1;
  long end = ftell(f);
  if (fseek(f, here, SEEK_SET) != 0 || end > 0x7FFFFFFFL) return -1;
  return (int32_t)end;
}

void tt_board_close(int handle) {
  fclose(tt_host_files[handle]);
  tt_host_files[handle] = NULL;
}

void tt_board_exit(int code) {
  fflush(NULL);
  exit(code);
}

static uint64_t tt_host_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void tt_board_timer_start(void) { tt_host_t0 = tt_host_now(); }
uint64_t tt_board_timer_ticks(void) { return tt_host_now() - tt_host_t0; }

void tt_board_mpu_enable(void) {}
void tt_board_mpu_disable(void) {}
void tt_board_report_memory(void) {}
