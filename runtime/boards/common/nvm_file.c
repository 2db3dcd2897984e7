/* Board NVM kept in a host file (semihosting on the QEMU boards, stdio on the host board):
 * flash-like pages (erase = 0xFF) behind the tt_nvm_t interface, with a simulated power cut
 * after a given number of erase/program operations (see board.h). Every write reaches the
 * host file before the call returns, so the file holds exactly what a real flash would. */
#include <string.h>

#include "board.h"

static const uint8_t tt_nvm_erased_[64] = {
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
};

static int tt_nvm_fill_erased_(int handle, uint32_t offset, uint32_t n) {
  if (tt_board_seek(handle, offset) != 0) return -1;
  while (n > 0u) {
    uint32_t k = n < sizeof tt_nvm_erased_ ? n : (uint32_t)sizeof tt_nvm_erased_;
    if (tt_board_write(handle, tt_nvm_erased_, k) != k) return -1;
    n -= k;
  }
  return 0;
}

/* Called before each erase/program: at the cut, optionally tear, then stop the board. */
static void tt_nvm_power_(tt_board_nvm_t* nvm, uint32_t offset, const void* data, uint32_t n) {
  if (nvm->cut_after == 0u || nvm->ops != nvm->cut_after) return;
  if (nvm->tear) {
    if (data == NULL) {
      (void)tt_nvm_fill_erased_(nvm->handle, offset, n / 2u);
    } else if (tt_board_seek(nvm->handle, offset) == 0) {
      (void)tt_board_write(nvm->handle, data, n / 2u);
    }
  }
  tt_board_puts("NVM power cut after ");
  tt_board_put_u64(nvm->ops);
  tt_board_puts(" operations\n");
  tt_board_exit(TT_BOARD_EXIT_POWER_CUT);
}

static int tt_nvm_erase_(void* ctx, uint32_t page) {
  tt_board_nvm_t* nvm = (tt_board_nvm_t*)ctx;
  const uint32_t offset = page * nvm->page_size;
  tt_nvm_power_(nvm, offset, NULL, nvm->page_size);
  if (tt_nvm_fill_erased_(nvm->handle, offset, nvm->page_size) != 0) return -1;
  ++nvm->ops;
  return 0;
}

static int tt_nvm_program_(void* ctx, uint32_t page, const void* data, uint32_t n) {
  tt_board_nvm_t* nvm = (tt_board_nvm_t*)ctx;
  const uint32_t offset = page * nvm->page_size;
  if (n > nvm->page_size) return -1;
  tt_nvm_power_(nvm, offset, data, n);
  if (tt_board_seek(nvm->handle, offset) != 0 || tt_board_write(nvm->handle, data, n) != n) {
    return -1;
  }
  ++nvm->ops;
  return 0;
}

static int tt_nvm_read_(void* ctx, uint32_t offset, void* buf, uint32_t n) {
  tt_board_nvm_t* nvm = (tt_board_nvm_t*)ctx;
  if (tt_board_seek(nvm->handle, offset) != 0) return -1;
  return tt_board_read(nvm->handle, buf, n) == n ? 0 : -1;
}

int tt_board_nvm_open(tt_board_nvm_t* nvm, const char* path, uint32_t page_size,
                      uint32_t default_pages, tt_nvm_t* out) {
  memset(out, 0, sizeof(*out));
  if (page_size == 0u) return -1;
  nvm->ops = 0u;
  nvm->handle = tt_board_open(path, TT_BOARD_UPDATE);
  int32_t length = nvm->handle >= 0 ? tt_board_length(nvm->handle) : -1;
  if (nvm->handle < 0) {
    nvm->handle = tt_board_open(path, TT_BOARD_CREATE);
    if (nvm->handle < 0) return -1;
    if (tt_nvm_fill_erased_(nvm->handle, 0u, default_pages * page_size) != 0) return -1;
    length = (int32_t)(default_pages * page_size);
  }
  if (length < 0) return -1;
  nvm->page_size = page_size;
  out->ctx = nvm;
  out->page_size = page_size;
  out->page_count = (uint32_t)length / page_size;
  out->erase = tt_nvm_erase_;
  out->program = tt_nvm_program_;
  out->read = tt_nvm_read_;
  return 0;
}

void tt_board_nvm_close(tt_board_nvm_t* nvm) {
  if (nvm->handle >= 0) tt_board_close(nvm->handle);
  nvm->handle = -1;
}
