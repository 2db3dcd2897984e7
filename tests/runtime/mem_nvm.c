/* Flash-like NVM in host memory (see mem_nvm.h). */
#include "mem_nvm.h"

#include <string.h>

static int mem_nvm_power_(mem_nvm_t* m) {
  if (m->cut) return 0;
  if (m->cut_after != 0u && m->ops == m->cut_after) {
    m->cut = 1;
    return 0;
  }
  return 1;
}

static int mem_nvm_erase(void* ctx, uint32_t page) {
  mem_nvm_t* m = (mem_nvm_t*)ctx;
  if (page >= m->page_count) return -1;
  uint8_t* p = m->bytes + page * m->page_size;
  if (!mem_nvm_power_(m)) {
    if (m->tear && m->cut && m->ops == m->cut_after && !(m->tear & 2)) {
      memset(p, 0xFF, m->page_size / 2u);
      m->tear |= 2;
    }
    return -1;
  }
  memset(p, 0xFF, m->page_size);
  ++m->ops;
  return 0;
}

static int mem_nvm_program(void* ctx, uint32_t page, const void* data, uint32_t n) {
  mem_nvm_t* m = (mem_nvm_t*)ctx;
  if (page >= m->page_count || n > m->page_size) return -1;
  uint8_t* p = m->bytes + page * m->page_size;
  for (uint32_t i = 0; i < n; ++i) {
    if (p[i] != 0xFFu) return -2; /* programming a byte that is not erased */
  }
  if (!mem_nvm_power_(m)) {
    if (m->tear && m->cut && !(m->tear & 2)) {
      memcpy(p, data, n / 2u);
      m->tear |= 2;
    }
    return -1;
  }
  memcpy(p, data, n);
  ++m->ops;
  return 0;
}

static int mem_nvm_read(void* ctx, uint32_t offset, void* buf, uint32_t n) {
  mem_nvm_t* m = (mem_nvm_t*)ctx;
  if (m->fail_reads || offset > m->page_size * m->page_count ||
      n > m->page_size * m->page_count - offset) {
    return -1;
  }
  memcpy(buf, m->bytes + offset, n);
  return 0;
}

void mem_nvm_init(mem_nvm_t* m, uint32_t page_size, uint32_t page_count, tt_nvm_t* out) {
  memset(m, 0, sizeof(*m));
  m->page_size = page_size;
  m->page_count = page_count;
  memset(m->bytes, 0xFF, sizeof(m->bytes));
  out->ctx = m;
  out->page_size = page_size;
  out->page_count = page_count;
  out->erase = mem_nvm_erase;
  out->program = mem_nvm_program;
  out->read = mem_nvm_read;
}
